//! `caribou.trace_run`: one turn of a trace, as a (sync and async) context manager.
//!
//! Written in Rust because it runs once per request on the agent's hot path: as a Python class it
//! cost five Python frames (`__init__`, `__enter__`, `__exit__`, the ContextVar calls, the
//! finishing helper) per block, more than logging the items inside it.
//!
//! The current trace lives in the package's `contextvars.ContextVar` (`caribou._scope.
//! CURRENT_TRACE`, bound once through `scope::_bind_context`): `__enter__` opens a turn and sets
//! the variable, `__exit__` resets it and closes the turn. Each thread and each asyncio task sees
//! its own value, so concurrent requests never mix their items. `with` works in plain code and
//! inside `async def` (the seed's usage); `async with` works too (`__aenter__`/`__aexit__` do the
//! same work at once and return an already finished awaitable).
//!
//! How a block ends decides the turn's status: normally, the last `set_status` value, else
//! `COMPLETED`; `asyncio.CancelledError`, `concurrent.futures.CancelledError`,
//! `KeyboardInterrupt`, `GeneratorExit`, `SystemExit`: `CANCELLED`; any other exception: `ERROR`,
//! with `"Type: message"` and the formatted traceback recorded.
//!
//! Invariants: the agent's exception always propagates (`__exit__` returns `None`); nothing here
//! raises into the agent (a meta it cannot use is warned about and ignored; a failure while
//! closing is swallowed).

use pyo3::exceptions::{PyGeneratorExit, PyKeyboardInterrupt, PyStopIteration, PySystemExit};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping, PyString, PyType};

use caribou_model::RolloutStatus;

use crate::convert::str_of;
use crate::fields::type_name;
use crate::scope::{PyTraceHandle, context, open_handle};
use crate::warn::{Warn, warn_once};

/// One turn of a trace; `with caribou.trace_run(meta) as trace_id:`.
///
/// `meta` keys: `datapoint_id`, `phase` (`"eval"`, `"train"`, `"prod"`), `model_name`,
/// `trace_id` (pass the same id again to add a turn to a trace: multi-turn sessions), `run_id`,
/// `step`, `project` (each defaults to `configure()`'s value), `metadata` (a dict merged into the
/// trace's metadata) and `tags` (a list). Any other key is kept as metadata. Keyword arguments
/// are merged into `meta`.
#[pyclass(name = "trace_run", module = "caribou")]
#[derive(Debug)]
pub struct PyTraceRun {
    meta: Option<Py<PyAny>>,
    /// While the block runs: its turn and the ContextVar token that restores the previous one.
    entered: Option<(Py<PyTraceHandle>, Py<PyAny>)>,
}

#[pymethods]
impl PyTraceRun {
    #[new]
    #[pyo3(signature = (meta=None, /, **kwargs))]
    fn new(
        py: Python<'_>,
        meta: Option<Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyTraceRun {
        let meta = match kwargs.filter(|k| !k.is_empty()) {
            None => meta.map(Bound::unbind),
            Some(kwargs) => Some(merged(py, meta.as_ref(), kwargs).into_any().unbind()),
        };
        PyTraceRun {
            meta,
            entered: None,
        }
    }

    fn __enter__(&mut self, py: Python<'_>) -> Py<PyString> {
        let handle = open_handle(py, self.meta.as_ref().map(|m| m.bind(py)));
        let trace_id = PyString::new(py, handle.inner.trace_id()).unbind();
        // Neither fails short of running out of memory; if one does, the block runs untraced.
        if let Ok(handle) = Bound::new(py, handle)
            && let Some(ctx) = context(py)
            && let Ok(token) = ctx.set.bind(py).call1((&handle,))
        {
            self.entered = Some((handle.unbind(), token.unbind()));
        }
        trace_id
    }

    #[pyo3(signature = (exc_type, exc, tb))]
    fn __exit__(
        &mut self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        tb: &Bound<'_, PyAny>,
    ) {
        let Some((handle, token)) = self.entered.take() else {
            return;
        };
        restore(py, token.bind(py));
        // Tracing must never mask the agent's own outcome: a failure to finish is swallowed.
        let _ = finish(py, handle.bind(py), exc_type, exc, tb);
    }

    fn __aenter__(&mut self, py: Python<'_>) -> Ready {
        Ready {
            value: Some(self.__enter__(py).into_any()),
        }
    }

    #[pyo3(signature = (exc_type, exc, tb))]
    fn __aexit__(
        &mut self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        tb: &Bound<'_, PyAny>,
    ) -> Ready {
        self.__exit__(py, exc_type, exc, tb);
        Ready { value: None }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let meta = match &self.meta {
            Some(m) => m
                .bind(py)
                .repr()
                .map_or_else(|_| "...".to_owned(), |r| r.to_string()),
            None => "None".to_owned(),
        };
        format!("trace_run({meta})")
    }
}

/// `{**meta, **kwargs}`; a `meta` that is not a mapping is warned about and left out (the Python
/// version raised `TypeError` here, from inside the agent's code).
fn merged<'py>(
    py: Python<'py>,
    meta: Option<&Bound<'py, PyAny>>,
    kwargs: &Bound<'py, PyDict>,
) -> Bound<'py, PyDict> {
    let out = PyDict::new(py);
    if let Some(meta) = meta.filter(|m| !m.is_none()) {
        let taken = match meta.cast::<PyMapping>() {
            Ok(m) => out.update(m).is_ok(),
            Err(_) => false,
        };
        if !taken {
            warn_once(py, Warn::BadArgument, || {
                format!(
                    "trace_run() takes a dict, got {}; it was ignored",
                    type_name(meta)
                )
            });
        }
    }
    let _ = out.update(kwargs.as_mapping());
    out
}

/// Puts back the ContextVar's value from before the block. A token made in another context (a
/// generator resumed elsewhere) cannot be reset there: then the old value is set in this one.
fn restore(py: Python<'_>, token: &Bound<'_, PyAny>) {
    let Some(ctx) = context(py) else { return };
    if ctx.reset.bind(py).call1((token,)).is_ok() {
        return;
    }
    let old = token
        .getattr("old_value")
        .ok()
        .filter(|old| !old.is(ctx.missing.bind(py)))
        .unwrap_or_else(|| py.None().into_bound(py));
    let _ = ctx.set.bind(py).call1((old,));
}

fn finish(
    py: Python<'_>,
    handle: &Bound<'_, PyTraceHandle>,
    exc_type: &Bound<'_, PyAny>,
    exc: &Bound<'_, PyAny>,
    tb: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let handle = &handle.get().inner;
    if exc_type.is_none() {
        handle.close(None);
        return Ok(());
    }
    let exc_type = exc_type.cast::<PyType>()?;
    if is_cancellation(py, exc_type)? {
        handle.close(Some(RolloutStatus::Cancelled));
        return Ok(());
    }
    let message = if exc.is_none() {
        exc_type
            .name()
            .map_or_else(|_| "Exception".to_owned(), |n| n.to_string())
    } else {
        let text = str_of(exc);
        let name = type_name(exc);
        if text.is_empty() {
            name
        } else {
            format!("{name}: {text}")
        }
    };
    // The traceback exactly as Python prints it (the error path: no hurry).
    let lines = py
        .import("traceback")?
        .call_method1("format_exception", (exc_type, exc, tb))?;
    let text = PyString::new(py, "").call_method1("join", (lines,))?;
    handle.set_error(message, Some(str_of(&text)));
    handle.close(Some(RolloutStatus::Error));
    Ok(())
}

/// Whether an exception type means the work was stopped rather than failed. asyncio's and
/// concurrent.futures' `CancelledError` are looked up only if their module was imported (they
/// cannot have been raised otherwise), so caribou does not import asyncio.
fn is_cancellation(py: Python<'_>, exc_type: &Bound<'_, PyType>) -> PyResult<bool> {
    if exc_type.is_subclass_of::<PyKeyboardInterrupt>()?
        || exc_type.is_subclass_of::<PyGeneratorExit>()?
        || exc_type.is_subclass_of::<PySystemExit>()?
    {
        return Ok(true);
    }
    let modules = py.import("sys")?.getattr("modules")?;
    for name in ["asyncio", "concurrent.futures"] {
        if let Ok(module) = modules.get_item(name)
            && let Ok(cancelled) = module.getattr("CancelledError")
            && let Ok(cancelled) = cancelled.cast::<PyType>()
            && exc_type.is_subclass(cancelled)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// An awaitable that is already finished: awaiting it gives `value` at once. What `__aenter__`
/// and `__aexit__` return, having done their (non-blocking) work when called.
#[pyclass(name = "_Ready", module = "caribou._caribou")]
#[derive(Debug)]
pub struct Ready {
    value: Option<Py<PyAny>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Finishes at the first step, handing back the value (`StopIteration(value)`).
    fn __next__(&mut self) -> PyResult<Option<Py<PyAny>>> {
        match self.value.take() {
            Some(value) => Err(PyStopIteration::new_err((value,))),
            None => Ok(None),
        }
    }
}
