//! Sending one sealed batch to Kestrel, and what to do about the answer.
//!
//! `POST {endpoint}/api/v1/ingest` with `Content-Type: application/json`, `Content-Encoding: zstd`
//! and `Authorization: Bearer <key>` when a key is set. Every request is bounded: the connection by
//! `connect_timeout`, the whole exchange by `request_timeout`, so a hung Kestrel costs at most that
//! per attempt. Plain `http://` only (the SDK is built without TLS; put a TLS-terminating proxy on
//! the same host if Kestrel is remote).
//!
//! | answer | outcome |
//! | --- | --- |
//! | 2xx | [`Outcome::Acked`]: Kestrel committed the batch |
//! | transport error, timeout, 5xx, 429 | [`Outcome::Retry`], honouring `Retry-After` (seconds) |
//! | other 4xx (and anything else) | [`Outcome::Rejected`] with Kestrel's error message: resending cannot help |

use std::time::Duration;

use caribou_model::api::ErrorBody;

use crate::config::Config;

/// Where batches are posted, below the endpoint.
pub const INGEST_PATH: &str = "/api/v1/ingest";
/// Longest `Retry-After` honoured; a larger value is clamped (the batch's retries stay bounded).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Most bytes of an error answer read (Kestrel's are a few hundred).
const MAX_ERROR_BODY: u64 = 64 << 10;

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Rejected {
        status: u16,
        message: String,
    },
}

/// A blocking HTTP agent with the config's timeouts. Errors come back as statuses, not `Err`.
pub fn agent(config: &Config) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(config.connect_timeout))
        .timeout_global(Some(config.request_timeout))
        .http_status_as_error(false)
        .user_agent(concat!("caribou-rust/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// The `Authorization` header value for a key.
pub fn bearer(api_key: Option<&str>) -> Option<String> {
    api_key.map(|k| format!("Bearer {k}"))
}

/// Kestrel's `{"error": {"code", "message"}}`, or the raw text when the body is something else.
pub fn error_message(status: u16, body: &str) -> (String, String) {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => {
            let text: String = body.trim().chars().take(500).collect();
            let text = if text.is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                text
            };
            (format!("http_{status}"), text)
        }
    }
}

/// The ingest sender of one exporter.
#[derive(Debug)]
pub struct Transport {
    agent: ureq::Agent,
    url: String,
    auth: Option<String>,
}

impl Transport {
    pub fn new(config: &Config, endpoint: &str) -> Transport {
        Transport {
            agent: agent(config),
            url: format!("{endpoint}{INGEST_PATH}"),
            auth: bearer(config.api_key.as_deref()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Posts one zstd-compressed batch.
    pub fn post(&self, body: &[u8]) -> Outcome {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "zstd");
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        let mut response = match request.send(body) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: e.to_string(),
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // Read the answer to its end so the connection can be reused.
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ERROR_BODY)
            .lossy_utf8(true)
            .read_to_string();
        classify(status, retry_after, text.as_deref().unwrap_or(""))
    }
}

fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Acked,
        429 | 500..=599 => {
            let (_, message) = error_message(status, body);
            Outcome::Retry {
                after: retry_after,
                reason: format!("HTTP {status}: {message}"),
            }
        }
        _ => {
            let (code, message) = error_message(status, body);
            Outcome::Rejected {
                status,
                message: format!("{code}: {message}"),
            }
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: the backoff applies instead).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER))
}

/// The wait before retry number `attempt` (1-based): exponential from `base`, capped, with
/// jitter over the upper half so that many clients restarted together spread out.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, random: u64) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    let full = base.saturating_mul(factor).min(cap);
    let half = full / 2;
    let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = if jitter_nanos == 0 {
        0
    } else {
        random % (jitter_nanos + 1)
    };
    half + Duration::from_nanos(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(200, None, "{}"), Outcome::Acked);
        let body = r#"{"error": {"code": "bad_request", "message": "records[3].trace_id: must not be empty"}}"#;
        assert_eq!(
            classify(400, None, body),
            Outcome::Rejected {
                status: 400,
                message: "bad_request: records[3].trace_id: must not be empty".into()
            }
        );
        assert!(matches!(
            classify(401, None, "nope"),
            Outcome::Rejected { status: 401, .. }
        ));
        assert!(matches!(classify(413, None, ""), Outcome::Rejected { .. }));
        let Outcome::Retry { after, reason } = classify(429, Some(Duration::from_secs(2)), "")
        else {
            panic!("429 retries")
        };
        assert_eq!(after, Some(Duration::from_secs(2)));
        assert!(reason.contains("429"), "{reason}");
        assert!(matches!(
            classify(503, None, ""),
            Outcome::Retry { after: None, .. }
        ));
    }

    #[test]
    fn retry_after_is_parsed_and_clamped() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("100000"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        for attempt in 1..=40 {
            let full = base.saturating_mul(1 << (attempt - 1).min(16)).min(cap);
            for random in [0, 1, u64::MAX / 3, u64::MAX] {
                let d = backoff(attempt, base, cap, random);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} vs {full:?}"
                );
            }
        }
        assert_eq!(backoff(1, base, cap, 0), Duration::from_millis(50));
        assert_eq!(backoff(30, base, cap, 0), Duration::from_millis(2500));
    }
}
