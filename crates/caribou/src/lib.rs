//! Caribou: tracing for LLM agents (the Rust SDK core; the Python package is a thin layer over it).
//!
//! ```no_run
//! use caribou::{Config, TraceOptions, trace_run};
//! use caribou::model::{Item, Message};
//!
//! caribou::configure(Config { endpoint: Some("http://127.0.0.1:8750".into()), ..Config::from_env() });
//! let trace_id = trace_run(TraceOptions::default(), |trace| {
//!     caribou::log(Item::Message(Message { role: "user".into(), content: Some("hi".into()), ..Default::default() }));
//!     trace.trace_id().to_owned()
//! });
//! let report = caribou::flush(None);
//! println!("{trace_id}: {} sent, {} pending", report.sent, report.pending);
//! caribou::shutdown(None);
//! ```
//!
//! - [`config`]: what to configure; the environment variables, read in one place.
//! - [`endpoint`]: which Kestrel endpoints can be used; the others disable the SDK, warned once.
//! - [`notice`]: warnings kept for bindings whose host has no `tracing` subscriber (Python).
//! - [`global`]: the process-wide exporter: [`configure`], [`flush`], [`shutdown`],
//!   [`after_fork_in_child`], [`stats`].
//! - [`trace`]: [`TraceHandle`], one turn of a trace: log items, status, errors, metadata, tags.
//! - [`scope`]: the current trace for Rust code: [`trace_run`], [`trace_run_async`], [`log`], ...
//! - [`exporter`]: the bounded queue and the `caribou-exporter` thread; limits and drop behaviour.
//! - [`client`]: [`KestrelClient`], the blocking API client (runs, steps, datapoints, grades, reads).
//!
//! Logging never blocks, never panics and never returns an error into the agent: what cannot be
//! sent is dropped and counted ([`Stats`], [`FlushReport`]).

pub mod client;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod exporter;
pub mod global;
pub mod ids;
pub mod notice;
pub mod scope;
pub mod trace;

pub use caribou_model as model;
pub use client::KestrelClient;
pub use config::Config;
pub use error::ClientError;
pub use exporter::{FlushReport, Stats};
pub use global::{
    after_fork_in_child, configure, current_config, flush, is_enabled, shutdown, stats,
};
pub use scope::{
    TraceRunFuture, add_meta, add_tags, current, log, set_error, set_status, trace_run,
    trace_run_async,
};
pub use trace::{TraceHandle, TraceOptions};

/// Shuts the SDK down when dropped, for `main`: `let _guard = caribou::shutdown_on_drop();`.
/// (Statics are never dropped in Rust, so without it or an explicit [`shutdown`] records still
/// queued at exit are lost.)
#[must_use = "the guard shuts the SDK down when dropped; bind it to a variable that lives until exit"]
#[derive(Debug)]
pub struct ShutdownGuard {
    timeout: Option<std::time::Duration>,
}

/// A guard whose `Drop` runs [`shutdown`] (with its default timeout).
pub fn shutdown_on_drop() -> ShutdownGuard {
    ShutdownGuard { timeout: None }
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        shutdown(self.timeout);
    }
}
