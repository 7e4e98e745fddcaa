//! The command line: `kestrel <subcommand> ...`.
//!
//! Options of `serve` are all optional here: an option left out falls back to its environment
//! variable (clap `env`), then to the config file, then to the default; [`crate::config`] does the
//! merging and holds the table of environment variables.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use crate::config::env;

/// Kestrel: the trace server for LLM agents.
#[derive(Debug, Parser)]
#[command(name = "kestrel", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API on --addr, data in --data-dir.
    ///
    /// Precedence of settings: flag > environment variable > config file > default.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8750].
    #[arg(long, env = env::ADDR, value_name = "HOST:PORT")]
    pub addr: Option<String>,

    /// Folder of the data [default: the local data folder + /kestrel, else ./kestrel-data].
    #[arg(long, env = env::DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// An API key clients must send as `Authorization: Bearer <key>`.
    #[arg(long, env = env::API_KEY, value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// File of API keys, one per line (`#` starts a comment).
    #[arg(long, env = env::API_KEYS_FILE, value_name = "FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// Allow a non-loopback --addr without any API key (anyone who can reach it can read and
    /// write).
    #[arg(
        long,
        env = env::ALLOW_OPEN,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
    )]
    pub allow_open: Option<bool>,

    /// Largest request body on the wire, in bytes or with a unit (16MiB) [default: 16MiB].
    #[arg(long, env = env::MAX_BODY_BYTES, value_name = "SIZE")]
    pub max_body_bytes: Option<String>,

    /// Largest request body after gzip/zstd decompression [default: 64MiB].
    #[arg(long, env = env::MAX_DECOMPRESSED_BYTES, value_name = "SIZE")]
    pub max_decompressed_bytes: Option<String>,

    /// TOML config file (unknown keys are refused).
    #[arg(long, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log filter, tracing syntax (`info`, `kestrel=debug,info`) [default: info].
    #[arg(long, env = env::LOG, value_name = "FILTER")]
    pub log: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn allow_open_takes_an_optional_value() {
        let Command::Serve(a) = Cli::parse_from(["kestrel", "serve", "--allow-open"]).command;
        assert_eq!(a.allow_open, Some(true));
        let Command::Serve(a) = Cli::parse_from(["kestrel", "serve", "--allow-open=no"]).command;
        assert_eq!(a.allow_open, Some(false));
    }
}
