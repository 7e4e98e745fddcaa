//! `kestrel`: the trace server for LLM agents. Thin: parse the command line, then either serve
//! (resolve the config, start logging, run the server) or run a client command against a running
//! Kestrel ([`cli::commands`]).
//!
//! Exit codes: 0 success, 1 an error (printed as `error: ...` on stderr), 2 a usage error (clap).

mod answer_budget;
mod api;
mod auth;
mod body_budget;
mod cli;
mod config;
mod conn;
mod decode;
mod error;
mod fdlimit;
mod listener;
mod server;
mod tasks;
mod ui;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// mimalloc instead of glibc malloc: ingest allocates a batch's records on a request thread and
/// frees them on another, the pattern glibc's per-thread arenas handle worst (its slow paths were
/// a fifth of the writer thread's time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crate::config::{ServeConfig, env};

fn main() -> ExitCode {
    // The environment table of `serve --help` comes from config::ENV_VARS, the one list of them.
    let command = Cli::command().mut_subcommand("serve", |c| c.after_help(config::env_help()));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Blocking-pool threads per core (decoding and preparing request bodies, file I/O).
const BLOCKING_THREADS_PER_CORE: usize = 2;

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = ServeConfig::resolve(&args)?;
            init_logging(&config.log)?;
            // Request bodies are decoded and prepared on the blocking pool. Its default (up to 512
            // threads) let a burst of concurrent ingest requests start one thread each, and every
            // thread's allocator kept the memory it had used (RSS x4 at 16 clients) for no gain on
            // a machine with a few cores.
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("kestrel")
                .max_blocking_threads(cores * BLOCKING_THREADS_PER_CORE)
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(server::serve(config))
        }
        client => cli::commands::run(client),
    }
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .with_context(|| format!("bad log filter {filter:?} (--log / {})", env::LOG))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}
