//! The command line: `kestrel <subcommand> ...`.
//!
//! `serve` runs the server. Every other subcommand is a client of a running Kestrel: it talks to
//! `--url` / `KESTREL_URL` with `--api-key` / `KESTREL_API_KEY` through the SDK's
//! [`caribou::KestrelClient`], prints tables and conversations for people, or the API's JSON with
//! `--json` for scripts. Their code is in the `cli/` module folder, [`commands`] first.
//!
//! Options of `serve` are all optional here: an option left out falls back to its environment
//! variable (clap `env`), then to the config file, then to the default; [`crate::config`] does the
//! merging and holds the table of environment variables.
//!
//! Exit codes: 0 on success, 1 when Kestrel or the request failed, 2 for a usage error (clap's).

pub mod commands;
mod connect;
mod conversation;
mod format;
mod lists;
mod output;
mod paging;
mod table;

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::env;

/// Kestrel: the trace server for LLM agents.
///
/// `kestrel serve` runs the server; the other commands read and grade traces of a running one
/// (at --url / KESTREL_URL, default http://127.0.0.1:8750).
#[derive(Debug, Parser)]
#[command(name = "kestrel", version, about, long_about, propagate_version = true)]
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

    /// List traces, newest first, optionally matching a search query.
    ///
    /// QUERY is the search language of the UI and the API, e.g.
    /// 'status:error tag:premium meta.customer_id:c123 step:10..20 grade.reward>=0.5 cost>0.01
    /// -tag:internal "timed out"'. Quote it for the shell.
    #[command(after_help = TRACES_EXAMPLES)]
    Traces(TracesArgs),

    /// Show one trace as a conversation.
    ///
    /// A header (status, model, project/run/step, datapoint, tokens, cost, duration, tags,
    /// metadata, grades), then each turn's items in order: messages by role, tool calls with
    /// their arguments, tool runs with their results, events and grades; then the error and its
    /// traceback. Texts are shown whole unless --truncate is given.
    Trace(TraceArgs),

    /// List projects.
    Projects(ProjectsArgs),

    /// List runs (eval and training), newest first.
    Runs(RunsArgs),

    /// Per-step figures of a run: rollouts, statuses, grades, tokens, cost, duration.
    Steps(StepsArgs),

    /// Grade a trace after the fact.
    ///
    /// VALUE `true`/`false` is stored as a bool, a number as a number, anything else as a label.
    #[command(after_help = GRADE_EXAMPLES)]
    Grade(GradeArgs),
}

const TRACES_EXAMPLES: &str = "\
Examples:
  kestrel traces
  kestrel traces 'status:error \"timed out\"' --project math-rl
  kestrel traces --run run_0123 --sort grade --grade reward --all --json > traces.json";

const GRADE_EXAMPLES: &str = "\
Examples:
  kestrel grade trc_0193... reward 0.75
  kestrel grade trc_0193... correct true --grader human --comment 'checked by hand'
  kestrel grade trc_0193... verdict partially_right";

/// How the client commands reach Kestrel, and how they print.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the Kestrel server.
    #[arg(
        long,
        env = env::URL,
        value_name = "URL",
        default_value = "http://127.0.0.1:8750"
    )]
    pub url: String,

    /// API key, sent as `Authorization: Bearer <key>`.
    #[arg(long, env = env::API_KEY, value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Print the API's JSON instead of text (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TracesArgs {
    /// Search query (the search language; see above).
    #[arg(value_name = "QUERY")]
    pub query: Option<String>,

    /// Only traces of this project.
    #[arg(long, short = 'p', value_name = "NAME")]
    pub project: Option<String>,

    /// Only traces of this run.
    #[arg(long, short = 'r', value_name = "RUN_ID")]
    pub run: Option<String>,

    /// Order of the list.
    #[arg(long, value_enum, default_value_t = SortArg::Newest)]
    pub sort: SortArg,

    /// The grade name `--sort grade` and `--sort grade-asc` order by.
    #[arg(long, value_name = "NAME", default_value = "reward")]
    pub grade: String,

    /// Most traces to show [default: 50]; more than a page (1000) follows the cursors.
    #[arg(
        long,
        short = 'n',
        value_name = "N",
        conflicts_with = "all",
        value_parser = at_least_one
    )]
    pub limit: Option<u64>,

    /// Every matching trace: follow the cursors to the end (progress on stderr).
    #[arg(long)]
    pub all: bool,

    /// Continue a list where a previous one stopped (its `next_cursor`).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// `--sort` of `kestrel traces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    /// Newest first.
    Newest,
    /// Oldest first.
    Oldest,
    /// Most expensive first.
    Cost,
    /// Longest first.
    Duration,
    /// Most tokens first.
    Tokens,
    /// Highest grade (of --grade) first.
    Grade,
    /// Lowest grade (of --grade) first.
    GradeAsc,
}

/// A count of rows: 1 or more.
fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("use a whole number of at least 1".to_owned()),
    }
}

#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// The trace id (`trc_...`).
    #[arg(value_name = "TRACE_ID")]
    pub trace_id: String,

    /// Cut texts longer than N characters (default: keep them whole; N defaults to 400).
    #[arg(
        long,
        value_name = "N",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "400"
    )]
    pub truncate: Option<usize>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ProjectsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    /// Only runs of this project.
    #[arg(long, short = 'p', value_name = "NAME")]
    pub project: Option<String>,

    /// Most runs to show [default: 50]; more than a page (1000) follows the cursors.
    #[arg(
        long,
        short = 'n',
        value_name = "N",
        conflicts_with = "all",
        value_parser = at_least_one
    )]
    pub limit: Option<u64>,

    /// Every run: follow the cursors to the end.
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StepsArgs {
    /// The run id (`run_...`).
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,

    /// Only count rollouts matching this search query (e.g. 'status:completed').
    #[arg(value_name = "QUERY")]
    pub query: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct GradeArgs {
    /// The trace id (`trc_...`).
    #[arg(value_name = "TRACE_ID")]
    pub trace_id: String,

    /// Name of the grade (`reward`, `correct`, ...).
    #[arg(value_name = "NAME")]
    pub name: String,

    /// `true`/`false`, a number, or a label.
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    pub value: String,

    /// Why this grade.
    #[arg(long, short = 'c', value_name = "TEXT")]
    pub comment: Option<String>,

    /// Who or what graded (`human`, `gpt-4o-judge`, ...).
    #[arg(long, short = 'g', value_name = "NAME")]
    pub grader: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,
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

    /// Longest wait for a request's line and headers, from their first byte (from the connect
    /// for a connection's first request); past it the connection is closed [default: 10s].
    #[arg(long, env = env::HEADER_TIMEOUT, value_name = "DURATION")]
    pub header_timeout: Option<String>,

    /// How long a keep-alive connection may wait for its next request [default: 60s].
    #[arg(long, env = env::IDLE_TIMEOUT, value_name = "DURATION")]
    pub idle_timeout: Option<String>,

    /// Longest time to receive a request's body, from its headers; past it a 408 and the
    /// connection is closed [default: 60s].
    #[arg(long, env = env::BODY_TIMEOUT, value_name = "DURATION")]
    pub body_timeout: Option<String>,

    /// Longest time an answer may go without write progress (a client that does not read it);
    /// past it the connection is closed [default: 30s].
    #[arg(long, env = env::WRITE_TIMEOUT, value_name = "DURATION")]
    pub write_timeout: Option<String>,

    /// Most connections open at once; more wait in the listen backlog until one closes
    /// [default: 1024, lowered to what the open-file limit allows].
    #[arg(long, env = env::MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Memory for whole traces and item pages being sent at once; past it a 503 with
    /// Retry-After [default: 256MiB].
    #[arg(long, env = env::MAX_ANSWER_MEMORY, value_name = "SIZE")]
    pub max_answer_memory: Option<String>,

    /// Memory for request bodies (ingest batches) being read, decoded and stored at once (a body
    /// takes about four times its decompressed size at the peak); past it a request waits up to
    /// 5 s, then gets a 503 with Retry-After [default: 512MiB].
    #[arg(long, env = env::MAX_INGEST_MEMORY, value_name = "SIZE")]
    pub max_ingest_memory: Option<String>,

    /// Longest time one search or read of the store may take (waiting for a read connection
    /// included); past it the query is stopped and answered 503 `query_timeout` [default: 10s].
    #[arg(long, env = env::QUERY_TIMEOUT, value_name = "DURATION")]
    pub query_timeout: Option<String>,

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

    fn serve_args(argv: &[&str]) -> ServeArgs {
        match Cli::parse_from(argv).command {
            Command::Serve(a) => a,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn allow_open_takes_an_optional_value() {
        let a = serve_args(&["kestrel", "serve", "--allow-open"]);
        assert_eq!(a.allow_open, Some(true));
        let a = serve_args(&["kestrel", "serve", "--allow-open=no"]);
        assert_eq!(a.allow_open, Some(false));
    }

    #[test]
    fn client_commands_parse() {
        let cli = Cli::try_parse_from([
            "kestrel",
            "traces",
            "status:error",
            "--project",
            "p",
            "--sort",
            "grade-asc",
            "--limit",
            "5",
            "--url",
            "http://127.0.0.1:1",
        ])
        .unwrap();
        let Command::Traces(a) = cli.command else {
            panic!("not traces")
        };
        assert_eq!(a.query.as_deref(), Some("status:error"));
        assert_eq!(a.sort, SortArg::GradeAsc);
        assert_eq!(a.limit, Some(5));
        assert_eq!(a.client.url, "http://127.0.0.1:1");

        let cli = Cli::try_parse_from(["kestrel", "trace", "trc_1", "--truncate"]).unwrap();
        let Command::Trace(a) = cli.command else {
            panic!("not trace")
        };
        assert_eq!(a.truncate, Some(400));

        // A negative grade is a value, not an option.
        let cli = Cli::try_parse_from(["kestrel", "grade", "trc_1", "reward", "-0.5"]).unwrap();
        let Command::Grade(a) = cli.command else {
            panic!("not grade")
        };
        assert_eq!(a.value, "-0.5");

        assert!(Cli::try_parse_from(["kestrel", "traces", "--all", "--limit", "3"]).is_err());
    }
}
