//! Warn once, count the rest.
//!
//! Tracing must never raise into the agent, but a user should learn that something is off: each
//! [`Warn`] kind is reported once per process as a `caribou.CaribouWarning` (a `UserWarning`)
//! through Python's `warnings` module, and every occurrence is counted (see `caribou.stats()`).
//! A warnings filter set to `"error"` does not turn the warning into an exception here: the
//! raised warning is swallowed, because a logging call must not fail.
//!
//! Warnings of the Rust core that a user must see (a Kestrel endpoint that cannot be used,
//! spooled batches that are not replayed: `caribou::notice`) go to Python's `logging`, logger
//! `caribou`, level WARNING: the core has no `tracing` subscriber in a Python process. They are
//! passed on by [`log_notices`] whenever Python calls in at a point where one may have arisen
//! (`configure`, `is_enabled`, `get_kestrel_client`, a `trace_run` opening, `flush`,
//! `shutdown`); the core warns once per cause, so each reaches the log once.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pyo3::prelude::*;

pyo3::create_exception!(
    caribou,
    CaribouWarning,
    pyo3::exceptions::PyUserWarning,
    "Something about tracing is off (a call outside `trace_run`, a value that was dropped)."
);

/// What went wrong; each kind warns once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warn {
    /// `log`, `set_status`, ... called with no current `trace_run`.
    OutsideTrace,
    /// A field value of the wrong type was dropped from an item.
    BadField,
    /// `log` got something that is not an item, or an invalid item.
    BadItem,
    /// A `trace_run` meta key, a status or metadata that could not be used.
    BadArgument,
}

const KINDS: usize = 4;

impl Warn {
    fn index(self) -> usize {
        match self {
            Warn::OutsideTrace => 0,
            Warn::BadField => 1,
            Warn::BadItem => 2,
            Warn::BadArgument => 3,
        }
    }

    /// The key of this kind in `caribou.stats()`.
    pub fn stat_name(self) -> &'static str {
        match self {
            Warn::OutsideTrace => "outside_trace_calls",
            Warn::BadField => "dropped_fields",
            Warn::BadItem => "dropped_items",
            Warn::BadArgument => "bad_arguments",
        }
    }

    pub const ALL: [Warn; KINDS] = [
        Warn::OutsideTrace,
        Warn::BadField,
        Warn::BadItem,
        Warn::BadArgument,
    ];
}

static WARNED: [AtomicBool; KINDS] = [const { AtomicBool::new(false) }; KINDS];
static COUNTS: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];

/// Counts one occurrence of `kind` and, the first time, emits a `CaribouWarning` with the
/// message `msg()` (built only then), pointing at the Python line that called into Rust.
pub fn warn_once(py: Python<'_>, kind: Warn, msg: impl FnOnce() -> String) {
    warn_once_at(py, kind, 1, msg);
}

/// [`warn_once`] pointing `stacklevel` Python frames up (2 when the Rust function is called from
/// the package's own Python code, to point at the user's line).
pub fn warn_once_at(py: Python<'_>, kind: Warn, stacklevel: i32, msg: impl FnOnce() -> String) {
    COUNTS[kind.index()].fetch_add(1, Ordering::Relaxed);
    if WARNED[kind.index()].swap(true, Ordering::Relaxed) {
        return;
    }
    let text =
        msg() + " (caribou warns once about this; later cases are only counted in caribou.stats())";
    let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
    let category = py.get_type::<CaribouWarning>();
    if let Err(e) = PyErr::warn(py, category.as_any(), &text, stacklevel) {
        // A filter turned the warning into an error: it must not reach the agent.
        drop(e);
    }
}

/// How often each kind happened in this process.
pub fn counts() -> [(&'static str, u64); KINDS] {
    Warn::ALL.map(|k| (k.stat_name(), COUNTS[k.index()].load(Ordering::Relaxed)))
}

/// Lets every kind warn again (for tests).
#[pyfunction]
pub fn _reset_warnings() {
    for w in &WARNED {
        w.store(false, Ordering::Relaxed);
    }
}

/// Writes the core's pending notices (see the module docs) to `logging.getLogger("caribou")`
/// at WARNING. Costs one atomic load when there are none. Never raises: a logging setup that
/// fails loses the message, not the agent's call.
pub fn log_notices(py: Python<'_>) {
    if !caribou::notice::pending() {
        return;
    }
    for message in caribou::notice::take() {
        let logged = py
            .import("logging")
            .and_then(|logging| logging.call_method1("getLogger", ("caribou",)))
            .and_then(|logger| logger.call_method1("warning", ("%s", message)));
        if let Err(e) = logged {
            drop(e);
        }
    }
}
