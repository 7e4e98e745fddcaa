//! Kestrel's settings: read once, at start, into [`ServeConfig`].
//!
//! Precedence: command-line flag > environment variable > config file > default. Clap resolves the
//! first two (each flag declares its variable from [`env`]); this module adds the file and the
//! defaults. The config file is TOML with `deny_unknown_fields`: a misspelt key stops the start with
//! a message naming it, instead of being silently ignored.
//!
//! Every environment variable Kestrel reads is in [`ENV_VARS`]; nothing else calls `std::env::var`
//! (clap reads them for us).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::cli::ServeArgs;
use crate::conn::ConnLimits;
use crate::decode::BodyLimits;

/// Names of the environment variables.
pub mod env {
    pub const ADDR: &str = "KESTREL_ADDR";
    pub const DATA_DIR: &str = "KESTREL_DATA_DIR";
    pub const API_KEY: &str = "KESTREL_API_KEY";
    pub const API_KEYS_FILE: &str = "KESTREL_API_KEYS_FILE";
    pub const ALLOW_OPEN: &str = "KESTREL_ALLOW_OPEN";
    pub const MAX_BODY_BYTES: &str = "KESTREL_MAX_BODY_BYTES";
    pub const MAX_DECOMPRESSED_BYTES: &str = "KESTREL_MAX_DECOMPRESSED_BYTES";
    pub const HEADER_TIMEOUT: &str = "KESTREL_HEADER_TIMEOUT";
    pub const IDLE_TIMEOUT: &str = "KESTREL_IDLE_TIMEOUT";
    pub const BODY_TIMEOUT: &str = "KESTREL_BODY_TIMEOUT";
    pub const WRITE_TIMEOUT: &str = "KESTREL_WRITE_TIMEOUT";
    pub const MAX_CONNECTIONS: &str = "KESTREL_MAX_CONNECTIONS";
    pub const MAX_ANSWER_MEMORY: &str = "KESTREL_MAX_ANSWER_MEMORY";
    pub const MAX_INGEST_MEMORY: &str = "KESTREL_MAX_INGEST_MEMORY";
    pub const QUERY_TIMEOUT: &str = "KESTREL_QUERY_TIMEOUT";
    pub const CONFIG: &str = "KESTREL_CONFIG";
    pub const LOG: &str = "KESTREL_LOG";
    /// Where the client commands (`kestrel traces`, ...) find Kestrel.
    pub const URL: &str = "KESTREL_URL";
}

/// Every environment variable, with its flag and meaning.
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    (env::ADDR, "--addr", "listen address (127.0.0.1:8750)"),
    (env::DATA_DIR, "--data-dir", "data folder"),
    (
        env::API_KEY,
        "--api-key",
        "API key (Bearer); clients send it",
    ),
    (
        env::API_KEYS_FILE,
        "--api-keys-file",
        "file of API keys, one a line",
    ),
    (
        env::ALLOW_OPEN,
        "--allow-open",
        "allow non-loopback, no key",
    ),
    (
        env::MAX_BODY_BYTES,
        "--max-body-bytes",
        "max body on the wire (16MiB)",
    ),
    (
        env::MAX_DECOMPRESSED_BYTES,
        "--max-decompressed-bytes",
        "max body inflated (64MiB)",
    ),
    (
        env::HEADER_TIMEOUT,
        "--header-timeout",
        "request line + headers (10s)",
    ),
    (
        env::IDLE_TIMEOUT,
        "--idle-timeout",
        "keep-alive wait for a request (60s)",
    ),
    (
        env::BODY_TIMEOUT,
        "--body-timeout",
        "request body, then 408 (60s)",
    ),
    (
        env::WRITE_TIMEOUT,
        "--write-timeout",
        "answer without write progress (30s)",
    ),
    (
        env::MAX_CONNECTIONS,
        "--max-connections",
        "connections open at once (1024)",
    ),
    (
        env::MAX_ANSWER_MEMORY,
        "--max-answer-memory",
        "answers being sent, then 503 (256MiB)",
    ),
    (
        env::MAX_INGEST_MEMORY,
        "--max-ingest-memory",
        "request bodies in flight, then 503 (512MiB)",
    ),
    (
        env::QUERY_TIMEOUT,
        "--query-timeout",
        "a search or read, then 503 (10s)",
    ),
    (env::CONFIG, "--config", "TOML config file"),
    (env::LOG, "--log", "log filter (info)"),
    (env::URL, "--url", "server URL of client commands"),
];

/// The "Environment variables" section of `kestrel serve --help`.
pub fn env_help() -> String {
    let mut text = String::from("Environment variables (flag > env > config file > default):\n");
    for (name, flag, meaning) in ENV_VARS {
        text.push_str(&format!("  {name:<31} {flag:<25} {meaning}\n"));
    }
    text
}

pub const DEFAULT_ADDR: &str = "127.0.0.1:8750";
pub const DEFAULT_LOG: &str = "info";
pub const DEFAULT_MAX_ANSWER_MEMORY: u64 = 256 << 20;
pub const DEFAULT_MAX_INGEST_MEMORY: u64 = 512 << 20;

/// The config file. Every key is optional and has the name of its flag (with `_`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub api_key: Option<String>,
    pub api_keys_file: Option<PathBuf>,
    pub allow_open: Option<bool>,
    pub max_body_bytes: Option<ByteSize>,
    pub max_decompressed_bytes: Option<ByteSize>,
    pub header_timeout: Option<Seconds>,
    pub idle_timeout: Option<Seconds>,
    pub body_timeout: Option<Seconds>,
    pub write_timeout: Option<Seconds>,
    pub max_connections: Option<usize>,
    pub max_answer_memory: Option<ByteSize>,
    pub max_ingest_memory: Option<ByteSize>,
    pub query_timeout: Option<Seconds>,
    pub log: Option<String>,
}

/// A duration in a config file: a number of seconds or a string with a unit (`"500ms"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Seconds {
    Secs(u64),
    Text(String),
}

impl Seconds {
    fn resolve(&self, key: &str) -> anyhow::Result<Duration> {
        match self {
            Seconds::Secs(n) => Ok(Duration::from_secs(*n)),
            Seconds::Text(s) => {
                parse_duration(s).with_context(|| format!("config file key `{key}`"))
            }
        }
    }
}

/// A size in a config file: a number of bytes or a string with a unit (`"16MiB"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    fn resolve(&self, key: &str) -> anyhow::Result<u64> {
        match self {
            ByteSize::Bytes(n) => Ok(*n),
            ByteSize::Text(s) => parse_size(s).with_context(|| format!("config file key `{key}`")),
        }
    }
}

/// Everything `kestrel serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub api_key: Option<String>,
    pub api_keys_file: Option<PathBuf>,
    pub allow_open: bool,
    pub limits: BodyLimits,
    pub conn: ConnLimits,
    /// Bytes of large answers held in memory at once ([`crate::answer_budget`]).
    pub max_answer_memory: u64,
    /// Bytes of request bodies in flight at once ([`crate::body_budget`]).
    pub max_ingest_memory: u64,
    /// How long one read of the store may take.
    pub query_timeout: Duration,
    pub log: String,
}

impl ServeConfig {
    /// Merges flags and environment (already in `args`), the config file and the defaults.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let conn = resolve_conn_limits(args, &file)?;
        let max_answer_memory = size_setting(
            &args.max_answer_memory,
            &file.max_answer_memory,
            "max_answer_memory",
            env::MAX_ANSWER_MEMORY,
            DEFAULT_MAX_ANSWER_MEMORY,
        )?;
        let max_ingest_memory = size_setting(
            &args.max_ingest_memory,
            &file.max_ingest_memory,
            "max_ingest_memory",
            env::MAX_INGEST_MEMORY,
            DEFAULT_MAX_INGEST_MEMORY,
        )?;
        let query_timeout = duration_setting(
            &args.query_timeout,
            &file.query_timeout,
            "query_timeout",
            env::QUERY_TIMEOUT,
            kestrel_store::sqlite::DEFAULT_QUERY_TIMEOUT,
        )?;
        let addr_text = args
            .addr
            .clone()
            .or(file.addr)
            .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let addr: SocketAddr = addr_text.parse().map_err(|e| {
            anyhow::anyhow!(
                "--addr / {}: {addr_text:?} is not an address like 127.0.0.1:8750 ({e})",
                env::ADDR
            )
        })?;
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir);
        let max_body_bytes = size_setting(
            &args.max_body_bytes,
            &file.max_body_bytes,
            "max_body_bytes",
            env::MAX_BODY_BYTES,
            BodyLimits::DEFAULT.max_body_bytes,
        )?;
        let max_decompressed_bytes = size_setting(
            &args.max_decompressed_bytes,
            &file.max_decompressed_bytes,
            "max_decompressed_bytes",
            env::MAX_DECOMPRESSED_BYTES,
            BodyLimits::DEFAULT.max_decompressed_bytes,
        )?;
        Ok(ServeConfig {
            addr,
            data_dir,
            api_key: args.api_key.clone().or(file.api_key),
            api_keys_file: args.api_keys_file.clone().or(file.api_keys_file),
            allow_open: args.allow_open.or(file.allow_open).unwrap_or(false),
            limits: BodyLimits {
                max_body_bytes,
                max_decompressed_bytes,
            },
            conn,
            max_answer_memory,
            max_ingest_memory,
            query_timeout,
            log: args
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| DEFAULT_LOG.to_owned()),
        })
    }
}

/// A size setting: its flag or environment variable (`flag`), else its config file key, else
/// `default`; never 0. `name` is the config key; the flag is its name with dashes.
fn size_setting(
    flag: &Option<String>,
    key: &Option<ByteSize>,
    name: &str,
    var: &str,
    default: u64,
) -> anyhow::Result<u64> {
    let value = match (flag, key) {
        (Some(text), _) => {
            parse_size(text).with_context(|| format!("--{} / {var}", name.replace('_', "-")))?
        }
        (None, Some(v)) => v.resolve(name)?,
        (None, None) => default,
    };
    if value == 0 {
        bail!("--{} / {var} must be > 0", name.replace('_', "-"));
    }
    Ok(value)
}

/// A duration setting, resolved as [`size_setting`] resolves sizes.
fn duration_setting(
    flag: &Option<String>,
    key: &Option<Seconds>,
    name: &str,
    var: &str,
    default: Duration,
) -> anyhow::Result<Duration> {
    let value = match (flag, key) {
        (Some(text), _) => {
            parse_duration(text).with_context(|| format!("--{} / {var}", name.replace('_', "-")))?
        }
        (None, Some(v)) => v.resolve(name)?,
        (None, None) => default,
    };
    if value.is_zero() {
        bail!("--{} / {var} must be > 0", name.replace('_', "-"));
    }
    Ok(value)
}

/// The connection timeouts and cap: flag or environment, else config file, else default.
fn resolve_conn_limits(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<ConnLimits> {
    let d = ConnLimits::DEFAULT;
    let max_connections = args
        .max_connections
        .or(file.max_connections)
        .unwrap_or(d.max_connections);
    if max_connections == 0 {
        bail!("--max-connections / {} must be > 0", env::MAX_CONNECTIONS);
    }
    Ok(ConnLimits {
        header_timeout: duration_setting(
            &args.header_timeout,
            &file.header_timeout,
            "header_timeout",
            env::HEADER_TIMEOUT,
            d.header_timeout,
        )?,
        idle_timeout: duration_setting(
            &args.idle_timeout,
            &file.idle_timeout,
            "idle_timeout",
            env::IDLE_TIMEOUT,
            d.idle_timeout,
        )?,
        body_timeout: duration_setting(
            &args.body_timeout,
            &file.body_timeout,
            "body_timeout",
            env::BODY_TIMEOUT,
            d.body_timeout,
        )?,
        write_timeout: duration_setting(
            &args.write_timeout,
            &file.write_timeout,
            "write_timeout",
            env::WRITE_TIMEOUT,
            d.write_timeout,
        )?,
        max_connections,
    })
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    // toml's messages name the unknown key, list the known ones and show the line.
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

/// `dirs::data_local_dir()/kestrel`, or `./kestrel-data` where there is no such folder.
pub fn default_data_dir() -> PathBuf {
    dirs::data_local_dir().map_or_else(|| PathBuf::from("kestrel-data"), |d| d.join("kestrel"))
}

/// Parses `1048576`, `512KiB`, `16MiB`, `1GiB`, `10MB` (decimal), case-insensitive.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        anyhow::anyhow!(
            "{text:?} is not a size; write a number of bytes or e.g. 16MiB, 512KiB, 1GiB"
        )
    })?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            bail!("unknown size unit {other:?} in {text:?}; use B, KiB, MiB, GiB, KB, MB or GB")
        }
    };
    n.checked_mul(factor)
        .with_context(|| format!("{text:?} is too large"))
}

/// Parses `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        anyhow::anyhow!(
            "{text:?} is not a duration; write e.g. 10s, 500ms, 2m or a number of seconds"
        )
    })?;
    let millis: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        other => bail!("unknown duration unit {other:?} in {text:?}; use ms, s, m or h"),
    };
    n.checked_mul(millis)
        .map(Duration::from_millis)
        .with_context(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("2 kb").unwrap(), 2000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn connection_limits_resolve_and_refuse_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kestrel.toml");
        std::fs::write(
            &path,
            "idle_timeout = 5\nwrite_timeout = \"1500ms\"\nmax_connections = 7\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            header_timeout: Some("2s".into()),
            ..Default::default()
        };
        let cfg = ServeConfig::resolve(&args).unwrap();
        assert_eq!(cfg.conn.header_timeout, Duration::from_secs(2));
        assert_eq!(cfg.conn.idle_timeout, Duration::from_secs(5));
        assert_eq!(cfg.conn.write_timeout, Duration::from_millis(1500));
        assert_eq!(cfg.conn.body_timeout, ConnLimits::DEFAULT.body_timeout);
        assert_eq!(cfg.conn.max_connections, 7);
        assert_eq!(cfg.max_answer_memory, DEFAULT_MAX_ANSWER_MEMORY);
        let zero = ServeArgs {
            body_timeout: Some("0s".into()),
            ..Default::default()
        };
        assert!(ServeConfig::resolve(&zero).is_err());
    }

    #[test]
    fn ingest_memory_and_query_timeout_resolve_and_refuse_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kestrel.toml");
        std::fs::write(
            &path,
            "max_ingest_memory = \"64MiB\"\nquery_timeout = \"2s\"\n",
        )
        .unwrap();
        let from_file = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let cfg = ServeConfig::resolve(&from_file).unwrap();
        assert_eq!(cfg.max_ingest_memory, 64 << 20);
        assert_eq!(cfg.query_timeout, Duration::from_secs(2));
        let flags = ServeArgs {
            config: Some(path),
            max_ingest_memory: Some("1GiB".into()),
            query_timeout: Some("250ms".into()),
            ..Default::default()
        };
        let cfg = ServeConfig::resolve(&flags).unwrap();
        assert_eq!(cfg.max_ingest_memory, 1 << 30);
        assert_eq!(cfg.query_timeout, Duration::from_millis(250));
        let defaults = ServeConfig::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(defaults.max_ingest_memory, DEFAULT_MAX_INGEST_MEMORY);
        assert_eq!(
            defaults.query_timeout,
            kestrel_store::sqlite::DEFAULT_QUERY_TIMEOUT
        );
        for zero in [
            ServeArgs {
                max_ingest_memory: Some("0".into()),
                ..Default::default()
            },
            ServeArgs {
                query_timeout: Some("0s".into()),
                ..Default::default()
            },
        ] {
            let e = format!("{:#}", ServeConfig::resolve(&zero).unwrap_err());
            assert!(e.contains("must be > 0"), "{e}");
        }
    }

    #[test]
    fn precedence_is_flag_then_file_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kestrel.toml");
        std::fs::write(
            &path,
            "addr = \"127.0.0.1:9000\"\nmax_body_bytes = \"1MiB\"\nlog = \"debug\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            addr: Some("127.0.0.1:9001".into()),
            ..Default::default()
        };
        let cfg = ServeConfig::resolve(&args).unwrap();
        assert_eq!(cfg.addr.port(), 9001);
        assert_eq!(cfg.limits.max_body_bytes, 1 << 20);
        assert_eq!(cfg.limits.max_decompressed_bytes, 64 << 20);
        assert_eq!(cfg.log, "debug");
        assert!(!cfg.allow_open);
    }

    #[test]
    fn unknown_file_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kestrel.toml");
        std::fs::write(&path, "adr = \"127.0.0.1:9000\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let e = format!("{:#}", ServeConfig::resolve(&args).unwrap_err());
        assert!(e.contains("adr"), "{e}");
    }

    #[test]
    fn every_env_var_is_listed_once() {
        let mut names: Vec<_> = ENV_VARS.iter().map(|(n, _, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ENV_VARS.len());
    }
}
