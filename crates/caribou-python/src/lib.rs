//! `caribou._caribou`: the Python bindings of the Caribou SDK.
//!
//! The public package is `python/caribou/` (built by maturin); this extension is private to it.
//! Bindings stay thin: every Python class wraps a Rust value (an item class holds its item's JSON, `items::ItemData`),
//! and the logic (queueing, batching, sending, retries, fork safety) lives once, in the
//! `caribou` crate. What must be Python lives in the package: the ContextVar of the current
//! trace (read and set from here through its bound methods), `atexit` and `os.register_at_fork`
//! hooks.
//!
//! Modules: [`items`] (the four item classes), [`status`] (`RolloutStatus`), [`scope`] (the
//! current trace and the logging calls), [`trace_run`] (the context manager), [`exporter`]
//! (configure, flush, shutdown, fork), [`client`] (the Kestrel API client), [`convert`] and
//! [`fields`] (reading Python values), [`item_json`] (Python values written straight to JSON),
//! [`warn`] (warn once, count the rest).
//!
//! Invariant: no logging call raises into the agent; constructors raise `TypeError` only for a
//! required field of the wrong type.

use pyo3::prelude::*;

mod client;
mod convert;
mod exporter;
mod fields;
mod item_json;
mod items;
mod scope;
mod status;
mod trace_run;
mod warn;

#[pymodule]
fn _caribou(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;

    m.add_class::<items::PyMessage>()?;
    m.add_class::<items::PyToolExecution>()?;
    m.add_class::<items::PyEvent>()?;
    m.add_class::<items::PyGrade>()?;
    m.add_class::<status::PyRolloutStatus>()?;
    m.add_class::<scope::PyTraceHandle>()?;
    m.add_class::<trace_run::PyTraceRun>()?;
    m.add_class::<trace_run::Ready>()?;
    m.add_class::<exporter::PyFlushReport>()?;
    m.add_class::<client::PyKestrelClient>()?;
    m.add_class::<client::PyProject>()?;
    m.add_class::<client::PyRun>()?;
    m.add("KestrelError", py.get_type::<client::KestrelError>())?;
    m.add("CaribouWarning", py.get_type::<warn::CaribouWarning>())?;

    m.add_function(wrap_pyfunction!(scope::_bind_context, m)?)?;
    m.add_function(wrap_pyfunction!(scope::current_trace, m)?)?;
    m.add_function(wrap_pyfunction!(scope::open_trace, m)?)?;
    m.add_function(wrap_pyfunction!(scope::log, m)?)?;
    m.add_function(wrap_pyfunction!(scope::set_status, m)?)?;
    m.add_function(wrap_pyfunction!(scope::set_error, m)?)?;
    m.add_function(wrap_pyfunction!(scope::add_meta, m)?)?;
    m.add_function(wrap_pyfunction!(scope::add_tags, m)?)?;

    m.add_function(wrap_pyfunction!(exporter::configure, m)?)?;
    m.add_function(wrap_pyfunction!(exporter::is_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(exporter::flush, m)?)?;
    m.add_function(wrap_pyfunction!(exporter::shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(exporter::_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(exporter::stats, m)?)?;

    m.add_function(wrap_pyfunction!(client::get_kestrel_client, m)?)?;
    m.add_function(wrap_pyfunction!(warn::_reset_warnings, m)?)?;
    Ok(())
}
