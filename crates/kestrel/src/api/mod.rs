//! The JSON API under `/api/v1`: one module per resource, and the extractors they share.
//!
//! Handlers never use axum's `Json`/`Query`/`Path` rejections (plain-text bodies): they take
//! [`ApiJson`], [`ApiQuery`] and [`ApiPath`], whose rejections are [`ApiError`]s with JSON bodies.
//! Path parameters are checked with the model's name rules (not empty, bounded, no control
//! characters) before they reach the store.

pub mod datapoints;
pub mod ingest;
pub mod projects;
pub mod runs;
pub mod stats;
pub mod traces;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use caribou_model::Limits;
use caribou_model::validate::check_name;
use kestrel_store::{PageRequest, Store};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::answer_budget::AnswerBudget;
use crate::body_budget::{BodyBudget, BodyMemory};
use crate::decode::{self, BodyLimits};
use crate::error::ApiError;

/// `value` as JSON written by `caribou_model::json`: the same bytes as axum's `Json`, whose
/// `serde_json` tests every byte of a string through a table; for the answers that are mostly
/// item text (a page of items) that escaping was a sixth of the request's CPU.
pub fn text_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::with_capacity(4096);
    caribou_model::json::write(&mut body, value)
        .map_err(|e| ApiError::Internal(format!("encoding the answer: {e}")))?;
    Ok(body)
}

/// A 200 answer of JSON already written (`Vec<u8>` or `Bytes`).
pub fn json_response(body: impl IntoResponse) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub limits: BodyLimits,
    /// Memory for the large answers (a whole trace, a page of items) being sent.
    pub answers: AnswerBudget,
    /// Memory for the request bodies being read, decoded and stored.
    pub bodies: BodyBudget,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Bodies larger than this are parsed on the blocking pool, so a 64 MiB batch does not stall an
/// async worker for a few hundred milliseconds.
const INLINE_PARSE_BYTES: usize = 256 << 10;

/// A JSON body: content type, encoding and size checked by [`decode`], errors as JSON; with the
/// body memory it holds (`body_budget`), which a handler keeps until it answers.
#[derive(Debug)]
pub struct ApiJson<T>(pub T, pub BodyMemory);

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let (bytes, memory) =
            decode::read_body(&parts.headers, body, state.limits, &state.bodies).await?;
        let value = if bytes.len() <= INLINE_PARSE_BYTES {
            decode::parse_json(&bytes)?
        } else {
            tokio::task::spawn_blocking(move || decode::parse_json(&bytes))
                .await
                .map_err(|e| ApiError::Internal(format!("json parse task failed: {e}")))??
        };
        Ok(ApiJson(value, memory))
    }
}

/// A query string parsed strictly (unknown parameters refused).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        decode::parse_query(parts.uri.query()).map(ApiQuery)
    }
}

/// Path parameters, with a JSON error when they cannot be decoded.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|r| ApiError::bad_request(format!("bad path parameter: {}", r.body_text())))
    }
}

/// `?limit=&cursor=` of lists other than traces.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn into_request(self) -> Result<PageRequest, ApiError> {
        check_limit(self.limit)?;
        Ok(PageRequest {
            limit: self.limit,
            cursor: self.cursor,
        })
    }
}

/// Page sizes are 1..=1000.
pub fn check_limit(limit: Option<u32>) -> Result<(), ApiError> {
    match limit {
        Some(n) if !(1..=1000).contains(&n) => Err(ApiError::bad_request(format!(
            "invalid query parameter `limit`: {n} is out of range; use 1..=1000 (default 50)"
        ))),
        _ => Ok(()),
    }
}

/// A project name from a path or body.
pub fn check_project(field: &str, name: &str) -> Result<(), ApiError> {
    check_name(field, name, Limits::DEFAULT.max_name_len).map_err(Into::into)
}

/// A run, trace or datapoint id from a path or body.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    check_name(field, id, Limits::DEFAULT.max_id_len).map_err(Into::into)
}

/// A step number from a path.
pub fn parse_step(text: &str) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "bad path parameter `step`: {text:?} is not a step; use an integer >= 0"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn steps_and_limits() {
        assert_eq!(parse_step("12").unwrap(), 12);
        assert!(parse_step("-1").is_err());
        assert!(parse_step("x").unwrap_err().to_string().contains("\"x\""));
        assert!(check_limit(Some(0)).is_err());
        assert!(check_limit(Some(1000)).is_ok());
    }

    #[derive(serde::Serialize)]
    struct Detail {
        #[serde(flatten)]
        summary: serde_json::Value,
        items: Vec<serde_json::Value>,
        traceback: Option<String>,
    }

    /// Same bytes and content type as axum's `Json`, on values shaped like a trace's answer.
    #[tokio::test]
    async fn text_json_writes_what_serde_json_writes() {
        let detail = Detail {
            summary: json!({"trace_id": "trc_1", "cost_usd": 0.0012, "tags": ["a", "b"], "n": -3}),
            items: vec![
                json!({"type": "message", "role": "user",
                       "content": "quote \" backslash \\ newline \n tab \t bell \u{7} é 日本 🦀"}),
                json!({"type": "tool_execution", "result": {"rows": [1, 2.5, null, true]},
                       "name": "x".repeat(100)}),
            ],
            traceback: None,
        };
        let expected = serde_json::to_vec(&detail).unwrap();
        let response = json_response(text_json(&detail).unwrap());
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            HeaderValue::from_static("application/json")
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&expected)
        );
    }
}
