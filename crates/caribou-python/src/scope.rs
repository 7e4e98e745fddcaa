//! The current trace and the calls that log to it.
//!
//! The current trace is a `TraceHandle` held in a `contextvars.ContextVar` that the Python package
//! creates and binds here once ([`_bind_context`]); `caribou.trace_run` sets and resets it. A
//! ContextVar is per thread and per asyncio task, so concurrent requests never mix items. The
//! module-level calls (`log`, `set_status`, ...) read it from Rust, which saves a Python frame on
//! the hot path.
//!
//! Invariant: none of these calls raises into the agent. With no current trace they warn once and
//! do nothing; a value they cannot use is dropped, counted and warned about once.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use caribou::{TraceHandle, TraceOptions};
use caribou_model::JsonMap;

use crate::convert::{str_of, to_json, to_json_map};
use crate::fields::{truncate, type_name};
use crate::items::with_item;
use crate::status::{phase_of, status_of};
use crate::warn::{Warn, warn_once};

/// The package's ContextVar, as the bound methods this module calls (calling a bound method is
/// the cheapest access the stable ABI offers: the `PyContextVar_*` C calls are not part of it).
#[derive(Debug)]
pub struct ContextBinding {
    get: Py<PyAny>,
    pub set: Py<PyAny>,
    pub reset: Py<PyAny>,
    /// `contextvars.Token.MISSING`: a token's `old_value` when the variable had no value.
    pub missing: Py<PyAny>,
}

static CONTEXT: PyOnceLock<ContextBinding> = PyOnceLock::new();

/// Binds the ContextVar that holds the current `TraceHandle` (done once by `caribou/_scope.py`).
#[pyfunction]
pub fn _bind_context(var: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = var.py();
    let binding = ContextBinding {
        get: var.getattr("get")?.unbind(),
        set: var.getattr("set")?.unbind(),
        reset: var.getattr("reset")?.unbind(),
        missing: py
            .import("contextvars")?
            .getattr("Token")?
            .getattr("MISSING")?
            .unbind(),
    };
    // A second binding (a re-import) keeps the first: both name the same variable.
    let _ = CONTEXT.set(py, binding);
    Ok(())
}

/// The bound ContextVar, once `caribou` is imported.
pub fn context(py: Python<'_>) -> Option<&ContextBinding> {
    CONTEXT.get(py)
}

/// The current trace of this thread or task, if any.
pub fn current<'py>(py: Python<'py>) -> Option<Bound<'py, PyTraceHandle>> {
    let handle = CONTEXT.get(py)?.get.bind(py).call0().ok()?;
    handle.cast_into::<PyTraceHandle>().ok()
}

/// The current trace (the one `log` writes to), or None outside `trace_run`.
#[pyfunction]
pub fn current_trace(py: Python<'_>) -> Option<Bound<'_, PyTraceHandle>> {
    current(py)
}

/// One turn of a trace: what `trace_run` opens. Usually not used directly.
#[pyclass(name = "TraceHandle", module = "caribou", frozen)]
#[derive(Debug)]
pub struct PyTraceHandle {
    pub inner: TraceHandle,
}

#[pymethods]
impl PyTraceHandle {
    /// The trace id (`trc_...`, or the one given to `trace_run`).
    #[getter]
    fn trace_id(&self) -> &str {
        self.inner.trace_id()
    }

    fn log(&self, py: Python<'_>, item: &Bound<'_, PyAny>) {
        log_on(py, &self.inner, item);
    }

    fn set_status(&self, py: Python<'_>, status: &Bound<'_, PyAny>) {
        set_status_on(py, &self.inner, status);
    }

    #[pyo3(signature = (message, traceback=None))]
    fn set_error(&self, message: &Bound<'_, PyAny>, traceback: Option<&Bound<'_, PyAny>>) {
        set_error_on(&self.inner, message, traceback);
    }

    fn add_meta(&self, py: Python<'_>, meta: &Bound<'_, PyAny>) {
        add_meta_on(py, &self.inner, meta);
    }

    #[pyo3(signature = (*tags))]
    fn add_tags(&self, tags: &Bound<'_, PyTuple>) {
        add_tags_on(&self.inner, tags);
    }

    /// Ends this turn. `status` wins over the last `set_status`; with neither it is COMPLETED.
    /// Idempotent: later calls do nothing.
    #[pyo3(signature = (status=None))]
    fn close(&self, py: Python<'_>, status: Option<&Bound<'_, PyAny>>) {
        let status = status
            .filter(|s| !s.is_none())
            .and_then(|s| match status_of(s) {
                Ok(st) => Some(st),
                Err(e) => {
                    warn_once(py, Warn::BadArgument, || format!("close(): {e}; ignored"));
                    None
                }
            });
        self.inner.close(status);
    }

    fn __repr__(&self) -> String {
        format!("TraceHandle(trace_id={:?})", self.inner.trace_id())
    }
}

fn outside(py: Python<'_>, call: &str) {
    warn_once(py, Warn::OutsideTrace, || {
        format!("caribou.{call}() was called outside `with caribou.trace_run(...)`; it did nothing")
    });
}

/// Logs a `Message`, `ToolExecution`, `Event` or `Grade` to the current trace.
#[pyfunction]
pub fn log(py: Python<'_>, item: &Bound<'_, PyAny>) {
    match current(py) {
        Some(h) => log_on(py, &h.get().inner, item),
        None => outside(py, "log"),
    }
}

/// Sets the current trace's status (the last one set wins; an exception leaving `trace_run` wins
/// over all).
#[pyfunction]
pub fn set_status(py: Python<'_>, status: &Bound<'_, PyAny>) {
    match current(py) {
        Some(h) => set_status_on(py, &h.get().inner, status),
        None => outside(py, "set_status"),
    }
}

/// Records an error message (and optionally a traceback) on the current trace.
#[pyfunction]
#[pyo3(signature = (message, traceback=None))]
pub fn set_error(py: Python<'_>, message: &Bound<'_, PyAny>, traceback: Option<&Bound<'_, PyAny>>) {
    match current(py) {
        Some(h) => set_error_on(&h.get().inner, message, traceback),
        None => outside(py, "set_error"),
    }
}

/// Merges keys into the current trace's metadata.
#[pyfunction]
pub fn add_meta(py: Python<'_>, meta: &Bound<'_, PyAny>) {
    match current(py) {
        Some(h) => add_meta_on(py, &h.get().inner, meta),
        None => outside(py, "add_meta"),
    }
}

/// Adds tags to the current trace.
#[pyfunction]
#[pyo3(signature = (*tags))]
pub fn add_tags(py: Python<'_>, tags: &Bound<'_, PyTuple>) {
    match current(py) {
        Some(h) => add_tags_on(&h.get().inner, tags),
        None => outside(py, "add_tags"),
    }
}

fn log_on(py: Python<'_>, h: &TraceHandle, item: &Bound<'_, PyAny>) {
    // The core validates once, counts the drop and tells us why, so the Python user hears of it.
    // With logging off it does nothing (not even writing the item's JSON) and returns `Ok`.
    let Some((kind, logged)) = with_item(item, |it| {
        (it.kind(), h.try_log_json(it.json(), it.checked()))
    }) else {
        if !caribou::is_enabled() {
            return; // a no-op, also for a value that is not an item
        }
        warn_once(py, Warn::BadItem, || {
            format!(
                "caribou.log() takes a Message, ToolExecution, Event or Grade, got {}; it was dropped",
                type_name(item)
            )
        });
        return;
    };
    if let Err(e) = logged {
        warn_once(py, Warn::BadItem, || {
            format!("an invalid {kind} was dropped: {e}")
        });
    }
}

fn set_status_on(py: Python<'_>, h: &TraceHandle, status: &Bound<'_, PyAny>) {
    match status_of(status) {
        Ok(st) => h.set_status(st),
        Err(e) => warn_once(py, Warn::BadArgument, || {
            format!("set_status(): {e}; ignored")
        }),
    }
}

fn set_error_on(h: &TraceHandle, message: &Bound<'_, PyAny>, traceback: Option<&Bound<'_, PyAny>>) {
    let message = if message.is_instance_of::<pyo3::exceptions::PyBaseException>() {
        let text = str_of(message);
        let name = type_name(message);
        if text.is_empty() {
            name
        } else {
            format!("{name}: {text}")
        }
    } else {
        str_of(message)
    };
    let traceback = traceback.filter(|t| !t.is_none()).map(str_of);
    h.set_error(message, traceback);
}

fn add_meta_on(py: Python<'_>, h: &TraceHandle, meta: &Bound<'_, PyAny>) {
    match to_json_map(meta) {
        Some(map) => h.add_meta(map),
        None => warn_once(py, Warn::BadArgument, || {
            format!("add_meta() takes a dict, got {}; ignored", type_name(meta))
        }),
    }
}

fn add_tags_on(h: &TraceHandle, tags: &Bound<'_, PyTuple>) {
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags.iter() {
        // `add_tags(["a", "b"])` means the same as `add_tags("a", "b")`.
        if let Ok(list) = tag.cast::<PyList>() {
            out.extend(list.iter().map(|t| str_of(&t)));
        } else if let Ok(tuple) = tag.cast::<PyTuple>() {
            out.extend(tuple.iter().map(|t| str_of(&t)));
        } else {
            out.push(str_of(&tag));
        }
    }
    if !out.is_empty() {
        h.add_tags(out);
    }
}

/// The keys of a `trace_run` meta that are not metadata.
const KNOWN_KEYS: [&str; 9] = [
    "datapoint_id",
    "phase",
    "model_name",
    "trace_id",
    "run_id",
    "step",
    "project",
    "metadata",
    "tags",
];

/// Opens a turn of a trace from a `trace_run` meta dict (see `caribou.trace_run` for the keys).
/// Never raises: a value it cannot use is ignored with a warning.
#[pyfunction]
#[pyo3(signature = (meta=None))]
pub fn open_trace(py: Python<'_>, meta: Option<&Bound<'_, PyAny>>) -> PyTraceHandle {
    open_handle(py, meta)
}

/// [`open_trace`], for Rust callers (`trace_run`). Warnings point at the Python line that called
/// into Rust (the `with` statement, or the `open_trace` call).
pub fn open_handle(py: Python<'_>, meta: Option<&Bound<'_, PyAny>>) -> PyTraceHandle {
    let meta = meta
        .filter(|m| !m.is_none())
        .and_then(|m| match m.cast::<PyDict>() {
            Ok(d) => Some(d.clone()),
            Err(_) => match py
                .get_type::<PyDict>()
                .call1((m,))
                .and_then(|d| Ok(d.cast_into::<PyDict>()?))
            {
                Ok(d) => Some(d),
                Err(_) => {
                    warn_once(py, Warn::BadArgument, || {
                        format!(
                            "trace_run() takes a dict, got {}; it was ignored",
                            type_name(m)
                        )
                    });
                    None
                }
            },
        });
    let mut opts = TraceOptions::default();
    let mut tags = Vec::new();
    if let Some(meta) = &meta {
        read_meta(py, meta, &mut opts, &mut tags);
    }
    let handle = TraceHandle::open(opts);
    // The first trace of a process that never called `configure()` starts the SDK from the
    // environment: a bad KESTREL_URL, or spooled batches left in the wrong place, show here.
    crate::warn::log_notices(py);
    if !tags.is_empty() {
        handle.add_tags(tags);
    }
    PyTraceHandle { inner: handle }
}

fn read_meta(
    py: Python<'_>,
    meta: &Bound<'_, PyDict>,
    opts: &mut TraceOptions,
    tags: &mut Vec<String>,
) {
    let mut metadata = JsonMap::new();
    for (k, v) in meta.iter() {
        // Borrowed when the key is a `str` (the usual case): only metadata keys are copied.
        let owned;
        let key = match k.cast::<PyString>().ok().and_then(|s| s.to_str().ok()) {
            Some(key) => key,
            None => {
                owned = str_of(&k);
                owned.as_str()
            }
        };
        if v.is_none() && KNOWN_KEYS.contains(&key) {
            continue;
        }
        match key {
            "datapoint_id" => opts.datapoint_id = Some(str_of(&v)),
            "model_name" => opts.model_name = Some(str_of(&v)),
            "trace_id" => opts.trace_id = Some(str_of(&v)),
            "run_id" => opts.run_id = Some(str_of(&v)),
            "project" => opts.project = Some(str_of(&v)),
            "phase" => match phase_of(&v) {
                Ok(p) => opts.phase = Some(p),
                Err(e) => bad_meta(py, &e),
            },
            "step" => match v.extract::<i64>() {
                Ok(s) if !v.is_instance_of::<pyo3::types::PyBool>() => opts.step = Some(s),
                _ => bad_meta(
                    py,
                    &format!("step must be an int, got {}", truncate(&str_of(&v), 40)),
                ),
            },
            "metadata" => match to_json_map(&v) {
                Some(m) => metadata.extend(m),
                None => bad_meta(py, "metadata must be a dict"),
            },
            "tags" => match v.try_iter() {
                Ok(it) if !v.is_instance_of::<PyString>() => {
                    tags.extend(it.flatten().map(|t| str_of(&t)));
                }
                _ => tags.push(str_of(&v)),
            },
            _ => {
                metadata.insert(key.to_owned(), to_json(&v));
            }
        }
    }
    opts.metadata = metadata;
}

fn bad_meta(py: Python<'_>, e: &str) {
    warn_once(py, Warn::BadArgument, || {
        format!("trace_run(): {e}; the key was ignored")
    });
}
