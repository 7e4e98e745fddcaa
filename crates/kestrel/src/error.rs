//! Every error the HTTP API answers with, and the one place that maps them to status codes.
//!
//! Invariants:
//! - Every error response has the body `{"error": {"code", "message"}}` ([`ErrorBody`]).
//! - A client mistake is a 4xx whose message says what to fix; it is logged at debug level only.
//! - A 5xx never carries its detail to the client (it may name files, SQL or internals): the detail
//!   is logged at error level and the client reads "internal error, see server log".

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use caribou_model::ValidationError;
use caribou_model::api::{ErrorBody, ErrorDetail};
use kestrel_store::StoreError;

/// Longest error message sent, in characters.
const MAX_MESSAGE_CHARS: usize = 1_000;

/// What the API answers when something goes wrong. The `String` is the message for people.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or invalid (bad JSON, bad field, bad query or path parameter).
    #[error("{0}")]
    BadRequest(String),
    /// A search query (`q`) that does not parse; the message is the parser's, with the position.
    #[error("{0}")]
    BadQuery(String),
    /// No API key, or a wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// No such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body (compressed or decompressed) is over a configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Wrong `Content-Type` or unsupported `Content-Encoding`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request's body did not arrive within the body timeout.
    #[error("{0}")]
    RequestTimeout(String),
    /// The request line and headers are larger than the server reads (answered below the
    /// handlers, see `conn::canned`).
    #[error("{0}")]
    HeaderTooLarge(String),
    /// The request's URI is longer than the server reads (answered below the handlers).
    #[error("{0}")]
    UriTooLong(String),
    /// The request contradicts what is stored (a trace id of another project, a record id sent
    /// again with other content); nothing of it was stored.
    #[error("{0}")]
    Conflict(String),
    /// A query ran past its deadline and was stopped.
    #[error("{0}")]
    QueryTimeout(String),
    /// Too much is in flight right now (ingest memory, answer memory): the client should retry
    /// after `retry_after_s` seconds (sent as `Retry-After`).
    #[error("{message}")]
    Overloaded { message: String, retry_after_s: u64 },
    /// Our fault. The detail is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

/// The stable, machine-readable codes of [`ApiError`]: the only place that knows the HTTP status
/// of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    BadQuery,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    RequestTimeout,
    HeaderTooLarge,
    UriTooLong,
    Conflict,
    QueryTimeout,
    Overloaded,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BadQuery => "bad_query",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::HeaderTooLarge => "header_too_large",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::Conflict => "conflict",
            ErrorCode::QueryTimeout => "query_timeout",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::BadQuery => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::QueryTimeout | ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        ApiError::NotFound(msg.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::BadQuery(_) => ErrorCode::BadQuery,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::RequestTimeout(_) => ErrorCode::RequestTimeout,
            ApiError::HeaderTooLarge(_) => ErrorCode::HeaderTooLarge,
            ApiError::UriTooLong(_) => ErrorCode::UriTooLong,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::QueryTimeout(_) => ErrorCode::QueryTimeout,
            ApiError::Overloaded { .. } => ErrorCode::Overloaded,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The message a client may see, at most [`MAX_MESSAGE_CHARS`] characters (messages quote
    /// cut excerpts of the client's input; this bounds whatever slips through).
    fn public_message(&self) -> String {
        let message = self.full_message();
        match message.char_indices().nth(MAX_MESSAGE_CHARS) {
            Some((cut, _)) => format!("{}…", &message[..cut]),
            None => message,
        }
    }

    /// The JSON body every error answer carries.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().as_str().to_owned(),
                message: self.public_message(),
            },
        }
    }

    fn full_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "internal error, see server log".to_owned(),
            ApiError::BadRequest(m)
            | ApiError::BadQuery(m)
            | ApiError::Unauthorized(m)
            | ApiError::NotFound(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::RequestTimeout(m)
            | ApiError::HeaderTooLarge(m)
            | ApiError::UriTooLong(m)
            | ApiError::Conflict(m)
            | ApiError::QueryTimeout(m)
            | ApiError::Overloaded { message: m, .. } => m.clone(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Unavailable(m) => ApiError::QueryTimeout(m),
            StoreError::Internal(m) => ApiError::Internal(format!("store: {m}")),
        }
    }
}

impl From<kestrel_query::QueryError> for ApiError {
    fn from(e: kestrel_query::QueryError) -> Self {
        ApiError::BadQuery(e.to_string())
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(code = code.as_str(), error = %self, "request refused");
        }
        let mut response = (code.status(), axum::Json(self.body())).into_response();
        if code == ErrorCode::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::Overloaded { retry_after_s, .. } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_detail_is_never_sent() {
        let response = ApiError::Internal("disk /secret/path full".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.error.code, "internal");
        assert_eq!(body.error.message, "internal error, see server log");
    }

    #[test]
    fn store_errors_map_to_client_codes() {
        assert_eq!(
            ApiError::from(StoreError::NotFound("x".into()))
                .code()
                .status(),
            404
        );
        assert_eq!(
            ApiError::from(StoreError::Invalid("x".into()))
                .code()
                .status(),
            400
        );
        assert_eq!(
            ApiError::from(StoreError::Internal("x".into()))
                .code()
                .status(),
            500
        );
    }
}
