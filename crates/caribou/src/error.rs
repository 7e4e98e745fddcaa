//! The crate's one error type. Only the Kestrel API client returns errors: logging never does.

/// What a [`crate::KestrelClient`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No endpoint is configured (`KESTREL_URL` unset): the client is disabled.
    #[error("kestrel is not configured: set KESTREL_URL or configure an endpoint")]
    Disabled,
    /// Kestrel answered with an error; `message` is its explanation.
    #[error("kestrel answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, timeout, broken connection.
    #[error("cannot reach kestrel: {0}")]
    Transport(String),
    /// An answer that does not have the expected shape.
    #[error("unexpected answer from kestrel: {0}")]
    Decode(String),
}
