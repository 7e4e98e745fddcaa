//! SDK configuration, and the one place that reads the environment.
//!
//! [`Config::default`] is a disabled SDK (no endpoint): every logging call is a cheap no-op that
//! never fails. [`Config::from_env`] starts from the defaults and applies these variables; nothing
//! else in the crate reads the environment:
//!
//! | variable | field | default |
//! | --- | --- | --- |
//! | `KESTREL_URL` | `endpoint` (base URL `http://HOST[:PORT][/PATH]`, e.g. `http://127.0.0.1:8750`) | none: disabled |
//! | `KESTREL_API_KEY` | `api_key` (sent as `Authorization: Bearer <key>`) | none |
//! | `CARIBOU_QUEUE_CAPACITY` | `queue_capacity` (records) | 262,144 |
//! | `CARIBOU_QUEUE_MAX_BYTES` | `queue_max_bytes` (bytes of the waiting records' JSON) | 256 MiB |
//! | `CARIBOU_BATCH_RECORDS` | `max_batch_records` | 1,000 |
//! | `CARIBOU_FLUSH_INTERVAL_MS` | `flush_interval` | 250 ms |
//! | `CARIBOU_REQUEST_TIMEOUT_MS` | `request_timeout` | 10,000 ms |
//! | `CARIBOU_MAX_RETRIES` | `max_retries` | 8 |
//! | `CARIBOU_SPOOL` | `spool` (`0`/`false`/`off`/`no` turns the on-disk spool off) | on |
//! | `CARIBOU_SPOOL_DIR` | `spool_dir` (batches go to `<it>/<hash of endpoint>`) | `<user cache dir>/caribou/spool` |
//! | `CARIBOU_SPOOL_MAX_BYTES` | `spool_max_bytes` (per endpoint) | 1 GiB |
//!
//! An empty variable counts as unset. A value that does not parse, or is out of range (a capacity,
//! batch size or interval of zero), is warned about once and the default is used: a typo in the
//! environment never stops the agent. An endpoint that cannot be used (not an `http://` URL with a
//! host, see [`crate::endpoint`]), from `KESTREL_URL` or set in code, is refused when the config
//! takes effect ([`crate::configure`]): warned once, and the SDK is disabled for the process
//! rather than spooling batches that could never be sent.
//!
//! Limits: the queue holds at most `queue_capacity` records and at most `queue_max_bytes` of them
//! (a record is queued as its JSON, written on the logging thread; it counts for its length plus
//! 32 bytes), whichever comes first; beyond that, records are dropped and counted (see
//! [`crate::exporter`]). The defaults hold a burst of 20,000 LLM calls each in its own
//! `trace_run` (five records each: 100,000 records of ~0.3-2 KB) even if the exporter took
//! nothing meanwhile. The byte bound is what caps memory: a queue full of records of 1-2 KB stops
//! at 256 MiB, not at 262,144 records. The record bound costs 24 bytes per slot allocated up
//! front (6 MiB at the default).
//!
//! The spool ([`crate::exporter`] and its `spool` module) keeps on disk the batches Kestrel does
//! not take, up to `spool_max_bytes`, and delivers them when Kestrel is back, from this process or
//! the next one using the same folder. Inside the spool folder, default or `spool_dir`, each
//! endpoint has a subfolder of its own (`<hash of endpoint>`), so a process replays only batches
//! spooled for its own Kestrel (and, by a tag in each file, with its own API key). With the spool
//! off, such batches are retried `max_retries` times and then dropped (counted).

use std::path::PathBuf;
use std::time::Duration;

use caribou_model::Phase;

use crate::endpoint;

/// Default queue capacity, in records.
pub const DEFAULT_QUEUE_CAPACITY: usize = 262_144;
/// Default bound on the bytes of the records (their JSON) waiting for the exporter.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 256 << 20;
/// Default most records per ingest request.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 1_000;
/// Default longest time a record waits before its batch is sent.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// Default limit on opening a TCP connection to Kestrel.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default limit on one ingest or API request, from start to the end of the answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default retries of one batch after its first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 8;
/// Default bound on the spool folder's size.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1 << 30;

/// Everything the SDK needs to know. Code may override any field the environment set.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Base URL of Kestrel, `http://HOST[:PORT][/PATH]`, e.g. `http://127.0.0.1:8750`; `None`
    /// disables the SDK (a no-op), and so does a value that is not such a URL (warned once).
    pub endpoint: Option<String>,
    pub api_key: Option<String>,
    /// Project that traces are filed under (when `run_id` names no run).
    pub project: Option<String>,
    /// Run id issued by Kestrel (eval/train), or the project name (prod).
    pub run_id: Option<String>,
    pub phase: Phase,
    /// Training step of the traces logged from now on.
    pub step: Option<i64>,
    /// Most records waiting for the exporter; beyond it records are dropped and counted.
    pub queue_capacity: usize,
    /// Most bytes of records (their JSON, plus 32 bytes each) waiting for the exporter; beyond it
    /// records are dropped and counted.
    pub queue_max_bytes: u64,
    /// Most records per ingest request.
    pub max_batch_records: usize,
    /// Longest time a record waits before its (partial) batch is sent.
    pub flush_interval: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Retries of a batch after its first attempt, on transport errors, 5xx and 429 (without a
    /// spool; with one, a batch goes to the spool after a few attempts and is never given up).
    pub max_retries: u32,
    /// Keep batches Kestrel does not take in an on-disk spool (default on).
    pub spool: bool,
    /// The spool folder; `None`: `<user cache dir>/caribou/spool`. Batches are kept in its
    /// subfolder `<hash of the endpoint>`, never in the folder itself.
    pub spool_dir: Option<PathBuf>,
    /// Most bytes the spool holds for one endpoint (its subfolder); beyond it the oldest batches
    /// are deleted (counted).
    pub spool_max_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: None,
            api_key: None,
            project: None,
            run_id: None,
            phase: Phase::Eval,
            step: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            spool: true,
            spool_dir: None,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
        }
    }
}

impl Config {
    /// The defaults with the environment applied (see the module docs for the variables).
    pub fn from_env() -> Config {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The defaults with variables from `lookup` applied: [`Config::from_env`] without the
    /// process environment, for tests and embedders.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut config = Config {
            endpoint: get("KESTREL_URL").map(|url| url.trim_end_matches('/').to_owned()),
            api_key: get("KESTREL_API_KEY"),
            ..Config::default()
        };
        if let Some(n) = parse_positive(get("CARIBOU_QUEUE_CAPACITY"), "CARIBOU_QUEUE_CAPACITY") {
            config.queue_capacity = n;
        }
        if let Some(n) = parse_positive(get("CARIBOU_QUEUE_MAX_BYTES"), "CARIBOU_QUEUE_MAX_BYTES") {
            config.queue_max_bytes = n;
        }
        if let Some(n) = parse_positive(get("CARIBOU_BATCH_RECORDS"), "CARIBOU_BATCH_RECORDS") {
            config.max_batch_records = n;
        }
        if let Some(ms) = parse_positive(
            get("CARIBOU_FLUSH_INTERVAL_MS"),
            "CARIBOU_FLUSH_INTERVAL_MS",
        ) {
            config.flush_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = parse_positive(
            get("CARIBOU_REQUEST_TIMEOUT_MS"),
            "CARIBOU_REQUEST_TIMEOUT_MS",
        ) {
            config.request_timeout = Duration::from_millis(ms);
        }
        if let Some(raw) = get("CARIBOU_MAX_RETRIES") {
            match raw.parse::<u32>() {
                Ok(n) => config.max_retries = n,
                Err(_) => bad_value("CARIBOU_MAX_RETRIES", &raw, "a whole number >= 0"),
            }
        }
        if let Some(raw) = get("CARIBOU_SPOOL") {
            match raw.to_ascii_lowercase().as_str() {
                "0" | "false" | "off" | "no" => config.spool = false,
                "1" | "true" | "on" | "yes" => config.spool = true,
                _ => bad_value("CARIBOU_SPOOL", &raw, "1/true/on or 0/false/off"),
            }
        }
        config.spool_dir = get("CARIBOU_SPOOL_DIR").map(PathBuf::from);
        if let Some(n) = parse_positive(get("CARIBOU_SPOOL_MAX_BYTES"), "CARIBOU_SPOOL_MAX_BYTES") {
            config.spool_max_bytes = n;
        }
        config
    }

    /// Whether logging goes anywhere.
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some()
    }

    /// The same config with values that would break the exporter (zero sizes and intervals)
    /// replaced by the defaults, and an endpoint that cannot be used ([`crate::endpoint::check`])
    /// removed, which disables the SDK; that is warned once per value (`tracing::warn!`, and
    /// through [`crate::notice`] to the Python package's `logging`).
    pub(crate) fn sanitized(mut self) -> Config {
        if self.queue_capacity == 0 {
            self.queue_capacity = DEFAULT_QUEUE_CAPACITY;
        }
        if self.queue_max_bytes == 0 {
            self.queue_max_bytes = DEFAULT_QUEUE_MAX_BYTES;
        }
        if self.max_batch_records == 0 {
            self.max_batch_records = DEFAULT_MAX_BATCH_RECORDS;
        }
        if self.flush_interval.is_zero() {
            self.flush_interval = DEFAULT_FLUSH_INTERVAL;
        }
        if self.connect_timeout.is_zero() {
            self.connect_timeout = DEFAULT_CONNECT_TIMEOUT;
        }
        if self.request_timeout.is_zero() {
            self.request_timeout = DEFAULT_REQUEST_TIMEOUT;
        }
        if self.spool_max_bytes == 0 {
            self.spool_max_bytes = DEFAULT_SPOOL_MAX_BYTES;
        }
        if let Some(url) = self.endpoint.take() {
            let trimmed = url.trim();
            if !trimmed.trim_end_matches('/').is_empty() {
                // A refused endpoint disables the SDK instead of spooling for ever (warned once).
                match endpoint::check(trimmed) {
                    Ok(used) => self.endpoint = Some(used),
                    Err(refusal) => endpoint::warn_refused(&refusal),
                }
            }
        }
        self
    }
}

fn parse_positive<T: std::str::FromStr + PartialOrd + Default>(
    raw: Option<String>,
    name: &str,
) -> Option<T> {
    let raw = raw?;
    match raw.parse::<T>() {
        Ok(n) if n > T::default() => Some(n),
        _ => {
            bad_value(name, &raw, "a whole number > 0");
            None
        }
    }
}

fn bad_value(name: &str, raw: &str, expected: &str) {
    tracing::warn!(
        variable = name,
        value = raw,
        expected,
        "caribou: ignoring a bad environment value, using the default"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn nothing_set_is_the_disabled_default() {
        let config = from(&[]);
        assert_eq!(config, Config::default());
        assert!(!config.enabled());
        assert!(
            config.queue_capacity >= 100_000,
            "a 20k-call burst of one trace_run per call (5 records each) must fit"
        );
        assert!(
            config.queue_max_bytes >= 100_000 * 1_500,
            "and its bytes too"
        );
    }

    #[test]
    fn every_variable_is_read() {
        let config = from(&[
            ("KESTREL_URL", "http://127.0.0.1:9/ "),
            ("KESTREL_API_KEY", "secret"),
            ("CARIBOU_QUEUE_CAPACITY", "10"),
            ("CARIBOU_QUEUE_MAX_BYTES", "65536"),
            ("CARIBOU_BATCH_RECORDS", "7"),
            ("CARIBOU_FLUSH_INTERVAL_MS", "15"),
            ("CARIBOU_REQUEST_TIMEOUT_MS", "1500"),
            ("CARIBOU_MAX_RETRIES", "0"),
            ("CARIBOU_SPOOL", "off"),
            ("CARIBOU_SPOOL_DIR", "/tmp/spool here"),
            ("CARIBOU_SPOOL_MAX_BYTES", "4096"),
        ]);
        assert!(!config.spool);
        assert_eq!(config.spool_dir, Some(PathBuf::from("/tmp/spool here")));
        assert_eq!(config.spool_max_bytes, 4096);
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(config.api_key.as_deref(), Some("secret"));
        assert_eq!(config.queue_capacity, 10);
        assert_eq!(config.queue_max_bytes, 65536);
        assert_eq!(config.max_batch_records, 7);
        assert_eq!(config.flush_interval, Duration::from_millis(15));
        assert_eq!(config.request_timeout, Duration::from_millis(1500));
        assert_eq!(config.max_retries, 0);
        assert!(config.enabled());
    }

    #[test]
    fn bad_values_fall_back_to_defaults() {
        let config = from(&[
            ("KESTREL_URL", "   "),
            ("CARIBOU_QUEUE_CAPACITY", "lots"),
            ("CARIBOU_BATCH_RECORDS", "0"),
            ("CARIBOU_FLUSH_INTERVAL_MS", "-5"),
            ("CARIBOU_REQUEST_TIMEOUT_MS", "1e3"),
            ("CARIBOU_MAX_RETRIES", "-1"),
            ("CARIBOU_SPOOL", "maybe"),
            ("CARIBOU_SPOOL_MAX_BYTES", "0"),
        ]);
        assert_eq!(config, Config::default());
        assert!(config.spool, "the spool is on by default");
    }

    #[test]
    fn sanitized_repairs_zero_sizes() {
        let config = Config {
            endpoint: Some("http://h:1///".into()),
            queue_capacity: 0,
            queue_max_bytes: 0,
            max_batch_records: 0,
            flush_interval: Duration::ZERO,
            ..Config::default()
        }
        .sanitized();
        assert_eq!(config.queue_max_bytes, DEFAULT_QUEUE_MAX_BYTES);
        assert_eq!(config.endpoint.as_deref(), Some("http://h:1"));
        assert_eq!(config.queue_capacity, DEFAULT_QUEUE_CAPACITY);
        assert_eq!(config.max_batch_records, DEFAULT_MAX_BATCH_RECORDS);
        assert_eq!(config.flush_interval, DEFAULT_FLUSH_INTERVAL);
    }

    #[test]
    fn an_endpoint_that_cannot_be_used_disables_the_sdk_and_warns_once() {
        // Values of this test alone: the warned-once memory is process-wide.
        for raw in [
            "not a url (config test)",
            "ftp://config-test.example.com/",
            "http://:8751",
        ] {
            let config = from(&[("KESTREL_URL", raw)]);
            assert!(config.enabled(), "from_env keeps the value as given");
            let sanitized = config.clone().sanitized();
            assert_eq!(sanitized.endpoint, None, "{raw}");
            assert!(!sanitized.enabled());
            let value = raw.trim_end_matches('/');
            assert!(
                !crate::notice::warn_once(&endpoint::refusal_key(value), String::new()),
                "{raw} was warned about"
            );
            // Configured again (a trainer calls configure twice): no second warning.
            assert_eq!(config.sanitized().endpoint, None);
        }
        let usable = from(&[("KESTREL_URL", "http://127.0.0.1:8750/")]).sanitized();
        assert_eq!(usable.endpoint.as_deref(), Some("http://127.0.0.1:8750"));
    }
}
