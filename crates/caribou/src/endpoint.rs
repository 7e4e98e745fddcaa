//! Which Kestrel endpoints the SDK can use, checked once at configure time.
//!
//! An endpoint is a base URL: `http://HOST[:PORT][/PATH]` (the API paths, such as
//! `/api/v1/ingest`, are appended to it). Anything else is refused by [`check`] with the reason:
//! not a URL, a scheme other than `http` (this build sends plain HTTP: `ureq` without a TLS
//! provider, so `https://` could never connect), no host, a port that is not 1-65535, a query or
//! fragment (the API paths would land inside it), or spaces and control characters.
//!
//! Why refuse rather than try: a request to such an endpoint fails as a transport error, which
//! the exporter takes for a Kestrel that is away, so it would spool every batch for ever and
//! never say why. [`crate::Config::sanitized`] turns a refused endpoint into no endpoint (the
//! SDK is then disabled: logging is a no-op) and [`warn_refused`] says so once per value.

use std::borrow::Cow;
use std::fmt;

/// Longest part of a refused value quoted back in the warning (the rest is cut).
const QUOTE_CHARS: usize = 200;

/// What is expected, said in every refusal.
pub const EXPECTED: &str = "http://HOST[:PORT][/PATH], e.g. http://127.0.0.1:8750";

/// An endpoint [`check`] refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The value as given (trimmed).
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = without_credentials(&self.value);
        let quoted: String = shown.chars().take(QUOTE_CHARS).collect();
        let cut = if quoted.len() < shown.len() {
            "..."
        } else {
            ""
        };
        write!(
            f,
            "caribou: the Kestrel endpoint {quoted:?}{cut} (KESTREL_URL or configure(endpoint=...)) \
             cannot be used: {}; expected {EXPECTED}. Sending to Kestrel is off for this process: \
             logging calls do nothing",
            self.reason
        )
    }
}

/// `value` with any `user:password@` before its host replaced by `***@`: a warning goes to logs.
fn without_credentials(value: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = value.split_once("://") else {
        return Cow::Borrowed(value);
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => Cow::Owned(format!("{scheme}://***@{}", &rest[at + 1..])),
        None => Cow::Borrowed(value),
    }
}

/// The endpoint as the SDK uses it (trimmed, without trailing `/`), or why it cannot be used.
/// An empty value is not checked here: it means "no endpoint" (disabled, silently).
pub fn check(raw: &str) -> Result<String, Refusal> {
    let given = raw.trim();
    let refuse = |reason: String| {
        Err(Refusal {
            value: given.to_owned(),
            reason,
        })
    };
    if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("it contains a space or a control character".into());
    }
    let Some((scheme, rest)) = given.split_once("://") else {
        let bare = given.trim_end_matches('/');
        let hint = if bare.contains(':') || bare.contains('.') || bare == "localhost" {
            format!(" (did you mean \"http://{bare}\"?)")
        } else {
            String::new()
        };
        return refuse(format!("it is not a URL: it has no http:// in front{hint}"));
    };
    let rest = rest.trim_end_matches('/');
    // `rest` is a prefix of what followed "://": the value is `given` up to its end.
    let value = &given[..scheme.len() + "://".len() + rest.len()];
    if scheme.eq_ignore_ascii_case("https") {
        return refuse(
            "this build of caribou sends plain HTTP only (no TLS); for a remote Kestrel, put a \
             TLS-terminating proxy on the agent's host and use its http:// address"
                .into(),
        );
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return refuse(format!(
            "the scheme is {scheme:?}; Kestrel is reached over http"
        ));
    }
    if rest.contains(['?', '#']) {
        return refuse(
            "a base URL takes no query (?) or fragment (#): the API paths are appended to it"
                .into(),
        );
    }
    let authority = rest.split('/').next().unwrap_or_default();
    // Credentials before '@' are not the host.
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, after)) => (addr, after.strip_prefix(':')),
            None => return refuse("an IPv6 host lacks its closing ]".into()),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return refuse("it names no host".into());
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return refuse(format!("the port {port:?} is not a number from 1 to 65535"));
    }
    // What the transport will parse: the checks above give the reasons, this is the last word.
    match ureq::http::Uri::try_from(format!("{value}/api/v1/ingest")) {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(value.to_owned()),
        Ok(_) => refuse("it names no host".into()),
        Err(e) => refuse(format!("it is not a valid URL ({e})")),
    }
}

/// The key under which a refusal of `value` warns once (see [`crate::notice`]).
pub(crate) fn refusal_key(value: &str) -> String {
    format!("endpoint:{value}")
}

/// Warns about a refused endpoint, once per process and value: `tracing::warn!`, and kept for
/// the Python package, which writes it to `logging`.
pub(crate) fn warn_refused(refusal: &Refusal) {
    crate::notice::warn_once(&refusal_key(&refusal.value), refusal.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_endpoints_are_kept_without_trailing_slashes() {
        for (raw, used) in [
            ("http://127.0.0.1:8750", "http://127.0.0.1:8750"),
            (" http://localhost:8750/ ", "http://localhost:8750"),
            ("http://kestrel.internal", "http://kestrel.internal"),
            ("HTTP://Kestrel:80//", "HTTP://Kestrel:80"),
            ("http://[::1]:8750", "http://[::1]:8750"),
            (
                "http://10.0.0.5:8750/kestrel/",
                "http://10.0.0.5:8750/kestrel",
            ),
            ("http://user:pw@proxy:3128", "http://user:pw@proxy:3128"),
        ] {
            assert_eq!(check(raw).as_deref(), Ok(used), "{raw}");
        }
    }

    #[test]
    fn unusable_endpoints_are_refused_with_their_reason() {
        for (raw, reason) in [
            ("not a url", "space"),
            ("localhost:8750", "did you mean \"http://localhost:8750\"?"),
            ("kestrel", "no http:// in front"),
            ("ftp://files.example.com", "the scheme is \"ftp\""),
            ("https://kestrel.example.com", "no TLS"),
            ("http://", "no host"),
            ("http:///api", "no host"),
            ("http://:8750", "no host"),
            (
                "http://h:99999",
                "\"99999\" is not a number from 1 to 65535",
            ),
            ("http://h:0", "\"0\""),
            ("http://h:", "\"\""),
            ("http://[::1:8750", "closing ]"),
            ("http://h:1/?x=1", "no query"),
            ("http://h:1#top", "fragment"),
            ("http://h\u{0}:1", "control character"),
            ("http://h^:1", "not a valid URL"),
        ] {
            let refusal = check(raw).expect_err(raw);
            let text = refusal.to_string();
            assert!(text.contains(reason), "{raw}: {text}");
            assert!(text.contains(EXPECTED), "{text}");
            assert!(text.contains("Sending to Kestrel is off"), "{text}");
        }
    }

    #[test]
    fn credentials_are_not_repeated_in_the_warning() {
        let text = check("ftp://user:s3cret@files.example.com/x")
            .expect_err("ftp")
            .to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("\"ftp://***@files.example.com/x\""), "{text}");
    }

    #[test]
    fn a_long_value_is_cut_in_the_warning() {
        let raw = format!("ftp://{}", "x".repeat(10_000));
        let text = check(&raw).expect_err("ftp").to_string();
        assert!(text.len() < 800, "{}", text.len());
        assert!(text.contains("\"..."), "{text}");
    }
}
