//! API keys: where they come from and the middleware that checks them.
//!
//! Keys come from `KESTREL_API_KEY` / `--api-key` (one key) and a keys file (`--api-keys-file`,
//! one key per line, blank lines and `#` comments ignored, so a key cannot contain `#`). When at
//! least one key is configured, every request but `GET /healthz` needs
//! `Authorization: Bearer <key>`; otherwise it answers 401.
//!
//! Invariants:
//! - Keys are compared in constant time (no early exit on the first differing byte, and every
//!   configured key is tried), so response timing does not reveal a key's prefix.
//! - A keys file that exists but holds no key is an error at start-up rather than an open server.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The path that answers without a key, so load balancers and scripts can probe the server.
pub const OPEN_PATH: &str = "/healthz";

/// The configured API keys. Empty means auth is off.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Arc<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for ApiKeys {
    // Never print the keys themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.keys.len())
            .finish()
    }
}

impl ApiKeys {
    /// Gathers keys from a single key and a keys file.
    pub fn load(single: Option<&str>, file: Option<&Path>) -> anyhow::Result<ApiKeys> {
        let mut keys = Vec::new();
        if let Some(key) = single {
            let key = key.trim();
            if key.is_empty() {
                anyhow::bail!(
                    "KESTREL_API_KEY / --api-key is set but empty; set a key or unset it"
                );
            }
            keys.push(key.as_bytes().to_vec());
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API keys file {}", path.display()))?;
            let before = keys.len();
            keys.extend(parse_keys_file(&text).into_iter().map(String::into_bytes));
            if keys.len() == before {
                anyhow::bail!(
                    "the API keys file {} holds no key (one key per line, `#` starts a comment)",
                    path.display()
                );
            }
        }
        Ok(ApiKeys {
            keys: Arc::new(keys),
        })
    }

    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    pub fn count(&self) -> usize {
        self.keys.len()
    }

    /// True when `candidate` is one of the keys. Takes the same time whichever key matches.
    fn accepts(&self, candidate: &[u8]) -> bool {
        let mut found = false;
        for key in self.keys.iter() {
            found |= constant_time_eq(key, candidate);
        }
        found
    }
}

/// Lines of a keys file: trimmed, without blanks and `#` comments.
fn parse_keys_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Compares two byte strings without an early exit. The time depends only on the longer length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Middleware: lets a request through when auth is off, when it targets [`OPEN_PATH`], or when it
/// carries a configured key.
pub async fn require_key(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    if !keys.is_enabled() || request.uri().path() == OPEN_PATH {
        return next.run(request).await;
    }
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return ApiError::Unauthorized(
            "missing API key; send the header `Authorization: Bearer <api key>`".to_owned(),
        )
        .into_response();
    };
    let token = value.to_str().ok().and_then(|v| {
        let (scheme, rest) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    match token {
        Some(token) if keys.accepts(token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::Unauthorized("invalid API key".to_owned()).into_response(),
        None => ApiError::Unauthorized(
            "malformed Authorization header; send `Authorization: Bearer <api key>`".to_owned(),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_file_lines() {
        let keys = parse_keys_file("# team keys\nk1\n\n  k2  # laptop\n#k3\n");
        assert_eq!(keys, vec!["k1", "k2"]);
    }

    #[test]
    fn comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        let keys = ApiKeys {
            keys: Arc::new(vec![b"one".to_vec(), b"two".to_vec()]),
        };
        assert!(keys.accepts(b"two"));
        assert!(!keys.accepts(b"three"));
    }
}
