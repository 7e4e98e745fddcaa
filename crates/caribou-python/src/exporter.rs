//! Process-wide set-up: `configure`, `flush`, `shutdown`, the fork hook and `stats`.
//!
//! Calls that may wait (on the exporter thread or the network) release the GIL, so the agent's
//! other threads keep running and the exporter never waits on Python.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use caribou::{Config, FlushReport};

use crate::convert::py_str;
use crate::status::phase_of;
use crate::warn;

/// What `flush()` and `shutdown()` report.
#[pyclass(name = "FlushReport", module = "caribou", frozen, get_all)]
#[derive(Debug, Clone, Copy)]
pub struct PyFlushReport {
    /// Records acknowledged by Kestrel (in total, since the exporter started).
    pub sent: u64,
    /// Records durably written to the on-disk spool, delivered when Kestrel is back, in total.
    pub spooled: u64,
    /// Records dropped (queue full, invalid, refused by Kestrel, deleted from a full spool), in
    /// total.
    pub dropped: u64,
    /// Records neither acknowledged nor on disk when the call returned (non-zero only on a
    /// timeout).
    pub pending: u64,
    /// True when the timeout passed before everything was acknowledged or spooled.
    pub timed_out: bool,
}

impl From<FlushReport> for PyFlushReport {
    fn from(r: FlushReport) -> Self {
        PyFlushReport {
            sent: r.sent,
            spooled: r.spooled,
            dropped: r.dropped,
            pending: r.pending,
            timed_out: r.timed_out,
        }
    }
}

#[pymethods]
impl PyFlushReport {
    fn __repr__(&self) -> String {
        format!(
            "FlushReport(sent={}, spooled={}, dropped={}, pending={}, timed_out={})",
            self.sent,
            self.spooled,
            self.dropped,
            self.pending,
            if self.timed_out { "True" } else { "False" }
        )
    }
}

/// The tuning keys `configure()` takes, besides its named arguments.
const TUNING_KEYS: &str = "queue_capacity, queue_max_bytes, max_batch_records, flush_interval, connect_timeout, request_timeout, \
     max_retries (times in seconds), spool (bool), spool_dir (a path), spool_max_bytes";

/// (Re)configures tracing for this process. Endpoint and API key default to the environment
/// (`KESTREL_URL`, `KESTREL_API_KEY`); `endpoint=""` disables sending whatever the environment
/// says, and so does an endpoint that is not `http://HOST[:PORT][/PATH]` (warned once on the
/// `caribou` logger; see `caribou::endpoint`). An earlier exporter is flushed and stopped first.
#[pyfunction]
#[pyo3(
    signature = (run_id=None, phase=None, step=None, project=None, endpoint=None, api_key=None, **tuning),
    text_signature = "(run_id=None, phase='eval', step=None, project=None, endpoint=None, api_key=None, **tuning)"
)]
#[allow(clippy::too_many_arguments)]
pub fn configure(
    py: Python<'_>,
    run_id: Option<String>,
    phase: Option<&Bound<'_, PyAny>>,
    step: Option<i64>,
    project: Option<String>,
    endpoint: Option<String>,
    api_key: Option<String>,
    tuning: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let mut config = Config::from_env();
    // Named arguments win over the environment; what is not named keeps its environment value.
    config.run_id = run_id.or(config.run_id);
    config.step = step.or(config.step);
    config.project = project.or(config.project);
    if let Some(p) = phase.filter(|p| !p.is_none()) {
        config.phase = phase_of(p).map_err(PyValueError::new_err)?;
    }
    if let Some(endpoint) = endpoint {
        let endpoint = endpoint.trim().to_owned();
        config.endpoint = (!endpoint.is_empty()).then_some(endpoint);
    }
    if let Some(key) = api_key {
        config.api_key = (!key.is_empty()).then_some(key);
    }
    if let Some(tuning) = tuning {
        for (k, v) in tuning.iter() {
            let key = k.cast::<PyString>().map(py_str).unwrap_or_default();
            apply_tuning(&mut config, &key, &v)?;
        }
    }
    py.detach(|| caribou::configure(config));
    // An endpoint refused at configure time is warned about here, on the caller's line.
    warn::log_notices(py);
    Ok(())
}

fn apply_tuning(config: &mut Config, key: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
    let secs = |v: &Bound<'_, PyAny>| -> PyResult<Duration> {
        let s: f64 = v.extract()?;
        Duration::try_from_secs_f64(s)
            .map_err(|_| PyValueError::new_err(format!("{key} must be >= 0 seconds, got {s}")))
    };
    match key {
        "queue_capacity" => config.queue_capacity = v.extract()?,
        "queue_max_bytes" => config.queue_max_bytes = v.extract()?,
        "max_batch_records" => config.max_batch_records = v.extract()?,
        "max_retries" => config.max_retries = v.extract()?,
        "flush_interval" => config.flush_interval = secs(v)?,
        "connect_timeout" => config.connect_timeout = secs(v)?,
        "request_timeout" => config.request_timeout = secs(v)?,
        "spool" => config.spool = v.extract()?,
        "spool_dir" => config.spool_dir = v.extract()?,
        "spool_max_bytes" => config.spool_max_bytes = v.extract()?,
        _ => {
            return Err(PyTypeError::new_err(format!(
                "configure() got an unknown argument {key:?}; tuning arguments are {TUNING_KEYS}"
            )));
        }
    }
    Ok(())
}

fn timeout_of(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                PyValueError::new_err(format!("timeout must be a number of seconds >= 0, got {s}"))
            })
        })
        .transpose()
}

/// True when traces are sent somewhere (a usable endpoint is configured).
#[pyfunction]
pub fn is_enabled(py: Python<'_>) -> bool {
    let enabled = caribou::is_enabled();
    warn::log_notices(py);
    enabled
}

/// Waits until everything logged before the call is acknowledged by Kestrel, durably spooled (or
/// dropped), or `timeout` seconds pass. Releases the GIL while it waits.
#[pyfunction]
#[pyo3(signature = (timeout=None))]
pub fn flush(py: Python<'_>, timeout: Option<f64>) -> PyResult<PyFlushReport> {
    let timeout = timeout_of(timeout)?;
    let report = py.detach(|| caribou::flush(timeout));
    warn::log_notices(py);
    Ok(report.into())
}

/// Flushes and stops the exporter; later logging does nothing. Idempotent; also runs at exit.
#[pyfunction]
#[pyo3(signature = (timeout=None))]
pub fn shutdown(py: Python<'_>, timeout: Option<f64>) -> PyResult<PyFlushReport> {
    let timeout = timeout_of(timeout)?;
    let report = py.detach(|| caribou::shutdown(timeout));
    warn::log_notices(py);
    Ok(report.into())
}

/// Forgets the exporter inherited from the parent process (called by the package's
/// `os.register_at_fork(after_in_child=...)` hook); a fresh one starts on the next record.
#[pyfunction]
pub fn _after_fork_in_child() {
    caribou::after_fork_in_child();
}

/// Cumulative counters of this process: records enqueued, sent, dropped, pending, failed batches,
/// and what the Python layer dropped or ignored.
#[pyfunction]
pub fn stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = caribou::stats();
    let d = PyDict::new(py);
    d.set_item("enqueued", s.enqueued)?;
    d.set_item("sent", s.sent)?;
    d.set_item("dropped", s.dropped)?;
    d.set_item("pending", s.pending)?;
    d.set_item("failed_batches", s.failed_batches)?;
    d.set_item("dropped_queue_full", s.dropped_queue_full)?;
    d.set_item("dropped_invalid", s.dropped_invalid)?;
    d.set_item("dropped_rejected", s.dropped_rejected)?;
    d.set_item("dropped_unsent", s.dropped_unsent)?;
    d.set_item("spooled", s.spooled)?;
    d.set_item("spool_sent", s.spool_sent)?;
    d.set_item("dropped_spool", s.dropped_spool)?;
    for (name, n) in warn::counts() {
        d.set_item(name, n)?;
    }
    Ok(d)
}
