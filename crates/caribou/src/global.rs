//! The process-wide exporter: configure, flush, shutdown, fork.
//!
//! The current [`Config`] and its exporter live together in one [`Global`], held by an
//! `arc_swap::ArcSwapOption`: logging loads it without a lock (a few atomic operations), and
//! `configure`, `shutdown` and [`after_fork_in_child`] replace it with an atomic swap. Nothing on
//! these paths takes a lock, which is what makes a fork safe:
//!
//! - After `fork()` only the forking thread exists in the child; any lock another parent thread
//!   held (the exporter thread's channel wakers, its HTTP pool, a logging thread mid-enqueue) stays
//!   locked forever. [`after_fork_in_child`] therefore touches nothing of the inherited exporter:
//!   it swaps in a fresh `Global` with the same config and leaks the inherited one
//!   (`mem::forget`: no destructor, no lock). The child's exporter thread starts on first use.
//! - Records the parent had queued are the parent's to send. Should both ever send the same record,
//!   Kestrel stores it once (ids are unique and stable).
//!
//! Before the first `configure`, the config comes from the environment ([`Config::from_env`]).
//! Logging with no endpoint, or after [`shutdown`], is a no-op. Counters ([`stats`], the reports)
//! belong to the exporter, so they restart at every `configure` and in a forked child.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use caribou_model::Record;
use caribou_model::validate::{Limits, check_record};

use crate::config::Config;
use crate::exporter::{Exporter, FlushReport, Stats};

/// `flush(None)` waits at most this long.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// `shutdown(None)`, and `configure` stopping the previous exporter, wait at most this long.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

static GLOBAL: ArcSwapOption<Global> = ArcSwapOption::const_empty();

#[derive(Debug)]
struct Global {
    config: Arc<Config>,
    /// False when disabled (no endpoint) or shut down: logging is a no-op.
    active: bool,
    /// Started on first use. `Some(None)`: the thread could not be started (warned once).
    exporter: OnceLock<Option<Exporter>>,
    /// Set once this `Global` stands for a shut-down SDK: what `shutdown` returned, and the
    /// stopped exporter's final counters.
    shut_down: OnceLock<(FlushReport, Stats)>,
}

impl Global {
    fn new(config: Arc<Config>, active: bool) -> Global {
        let active = active && config.enabled();
        Global {
            config,
            active,
            exporter: OnceLock::new(),
            shut_down: OnceLock::new(),
        }
    }

    fn exporter(&self) -> Option<&Exporter> {
        if !self.active {
            return None;
        }
        self.exporter
            .get_or_init(|| match Exporter::start(&self.config) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "caribou: cannot start the exporter thread; logging is disabled");
                    None
                }
            })
            .as_ref()
    }

    fn started(&self) -> Option<&Exporter> {
        self.exporter.get().and_then(Option::as_ref)
    }
}

/// Loads the current `Global`, creating it from the environment on first use.
fn load() -> arc_swap::Guard<Option<Arc<Global>>> {
    let guard = GLOBAL.load();
    if guard.is_some() {
        return guard;
    }
    drop(guard);
    let fresh = Arc::new(Global::new(Arc::new(Config::from_env().sanitized()), true));
    // Only the first caller's wins; the loser's was never started, so dropping it is free.
    GLOBAL.compare_and_swap(&None::<Arc<Global>>, Some(fresh));
    GLOBAL.load()
}

/// Runs `f` with the current exporter, if logging is on. Never blocks (the first call after a
/// `configure`-less start or a fork starts the thread).
#[inline]
pub(crate) fn with_exporter(f: impl FnOnce(&Exporter)) {
    let guard = load();
    if let Some(exporter) = guard.as_ref().and_then(|g| g.exporter()) {
        f(exporter);
    }
}

/// [`with_exporter`], also handing `f` the config that exporter runs with (one load for both).
#[inline]
pub(crate) fn with_config_and_exporter(f: impl FnOnce(&Config, &Exporter)) {
    let guard = load();
    if let Some(global) = guard.as_ref()
        && let Some(exporter) = global.exporter()
    {
        f(&global.config, exporter);
    }
}

/// Validates and queues a (non-item) record on the current exporter.
pub(crate) fn enqueue_record(record: Record) {
    with_exporter(|exporter| match check_record(&record, &Limits::DEFAULT) {
        Ok(()) => exporter.enqueue_record(&record),
        Err(e) => exporter.count_invalid(&e),
    });
}

/// (Re)configures the process-wide exporter. The previous exporter is flushed and stopped (for at
/// most [`DEFAULT_SHUTDOWN_TIMEOUT`]); logging goes to the new one from the moment of the swap.
/// Zero sizes or intervals in `config` are replaced by the defaults.
pub fn configure(config: Config) {
    let global = Arc::new(Global::new(Arc::new(config.sanitized()), true));
    // Start the thread now rather than on the first log, so the first log is as cheap as the rest.
    let _ = global.exporter();
    if let Some(old) = GLOBAL.swap(Some(global))
        && let Some(exporter) = old.started()
    {
        exporter.shutdown(DEFAULT_SHUTDOWN_TIMEOUT);
    }
}

/// Whether logging currently goes anywhere (an endpoint is set and the SDK is not shut down).
pub fn is_enabled() -> bool {
    load().as_ref().is_some_and(|g| g.active)
}

/// The config in force.
pub fn current_config() -> Arc<Config> {
    load()
        .as_ref()
        .map_or_else(|| Arc::new(Config::default()), |g| g.config.clone())
}

/// Returns when every record logged before the call is acknowledged by Kestrel, durably written to
/// the spool (fsynced: it survives the process being killed right after), or dropped; or when
/// `timeout` (default [`DEFAULT_FLUSH_TIMEOUT`]) passes. With the spool on, what is still held
/// shortly before the timeout is spooled, so `pending` is non-zero only if the disk failed too.
/// The report says which.
pub fn flush(timeout: Option<Duration>) -> FlushReport {
    let global = GLOBAL.load_full();
    match global.as_ref() {
        Some(g) => match (g.started(), g.shut_down.get()) {
            (Some(exporter), _) => exporter.flush(timeout.unwrap_or(DEFAULT_FLUSH_TIMEOUT)),
            (None, Some((report, _))) => *report,
            (None, None) => FlushReport::default(),
        },
        None => FlushReport::default(),
    }
}

/// Flushes (within `timeout`, default [`DEFAULT_SHUTDOWN_TIMEOUT`]), spools what is left (or,
/// with no spool, drops it, counted) and stops the exporter thread. Logging afterwards is a no-op until the next [`configure`].
/// Idempotent: a second call returns the first call's report.
pub fn shutdown(timeout: Option<Duration>) -> FlushReport {
    loop {
        let current = GLOBAL.load_full();
        let Some(global) = current.as_ref() else {
            return FlushReport::default();
        };
        if let Some((report, _)) = global.shut_down.get() {
            return *report;
        }
        let stopped = Arc::new(Global::new(global.config.clone(), false));
        let previous = GLOBAL.compare_and_swap(&current, Some(stopped.clone()));
        let swapped = match (&*previous, &current) {
            (Some(p), Some(c)) => Arc::ptr_eq(p, c),
            _ => false,
        };
        if !swapped {
            continue; // someone else replaced it meanwhile: look again
        }
        let (report, stats) = global.started().map_or_else(Default::default, |e| {
            (
                e.shutdown(timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT)),
                e.stats(),
            )
        });
        return stopped.shut_down.get_or_init(|| (report, stats)).0;
    }
}

/// To be called in a child process right after `fork()` (Python: `os.register_at_fork`).
///
/// Takes no lock and runs no destructor: the inherited exporter (whose thread does not exist in
/// the child) is leaked, and a fresh one with the same config starts on the child's first log.
/// The child's counters start at zero. A shut-down SDK stays shut down.
pub fn after_fork_in_child() {
    crate::ids::note_fork();
    let current = GLOBAL.load_full();
    let replacement = current.as_ref().map(|g| {
        let fresh = Global::new(g.config.clone(), g.active);
        if let Some(done) = g.shut_down.get() {
            let _ = fresh.shut_down.set(*done);
        }
        Arc::new(fresh)
    });
    let inherited = GLOBAL.swap(replacement);
    std::mem::forget(inherited);
    std::mem::forget(current);
}

/// Cumulative counters of the current exporter (zero before it started; the final counters
/// after [`shutdown`]).
pub fn stats() -> Stats {
    let guard = GLOBAL.load();
    let Some(global) = guard.as_ref() else {
        return Stats::default();
    };
    match (global.started(), global.shut_down.get()) {
        (Some(exporter), _) => exporter.stats(),
        (None, Some((_, stats))) => *stats,
        (None, None) => Stats::default(),
    }
}
