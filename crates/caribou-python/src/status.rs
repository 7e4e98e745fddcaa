//! `RolloutStatus` for Python, and reading statuses and phases given as text.

use std::str::FromStr;

use pyo3::prelude::*;
use pyo3::types::PyString;

use caribou_model::{Phase, RolloutStatus};

use crate::convert::py_str;

/// The state of a trace (a rollout): set one with `caribou.set_status(RolloutStatus.COMPLETED)`.
/// `RUNNING` is what an open trace reads; the others end a trace.
#[pyclass(name = "RolloutStatus", module = "caribou", frozen, eq, hash)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PyRolloutStatus {
    #[pyo3(name = "RUNNING")]
    Running,
    #[pyo3(name = "COMPLETED")]
    Completed,
    #[pyo3(name = "TRUNCATED")]
    Truncated,
    #[pyo3(name = "ERROR")]
    Error,
    #[pyo3(name = "CANCELLED")]
    Cancelled,
}

impl From<PyRolloutStatus> for RolloutStatus {
    fn from(s: PyRolloutStatus) -> Self {
        match s {
            PyRolloutStatus::Running => RolloutStatus::Running,
            PyRolloutStatus::Completed => RolloutStatus::Completed,
            PyRolloutStatus::Truncated => RolloutStatus::Truncated,
            PyRolloutStatus::Error => RolloutStatus::Error,
            PyRolloutStatus::Cancelled => RolloutStatus::Cancelled,
        }
    }
}

impl From<RolloutStatus> for PyRolloutStatus {
    fn from(s: RolloutStatus) -> Self {
        match s {
            RolloutStatus::Running => PyRolloutStatus::Running,
            RolloutStatus::Completed => PyRolloutStatus::Completed,
            RolloutStatus::Truncated => PyRolloutStatus::Truncated,
            RolloutStatus::Error => PyRolloutStatus::Error,
            RolloutStatus::Cancelled => PyRolloutStatus::Cancelled,
        }
    }
}

#[pymethods]
impl PyRolloutStatus {
    /// The wire spelling: `"COMPLETED"`, ...
    #[getter]
    fn value(&self) -> &'static str {
        RolloutStatus::from(*self).as_str()
    }

    fn __str__(&self) -> &'static str {
        RolloutStatus::from(*self).as_str()
    }
}

/// A status given as a `RolloutStatus` or as text (`"completed"`, any case).
pub fn status_of(v: &Bound<'_, PyAny>) -> Result<RolloutStatus, String> {
    if let Ok(s) = v.cast::<PyRolloutStatus>() {
        return Ok((*s.get()).into());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return RolloutStatus::from_str(&py_str(s));
    }
    Err(format!("expected a caribou.RolloutStatus, got {v}"))
}

/// A phase given as text: `eval`, `train` or `prod` (any case).
pub fn phase_of(v: &Bound<'_, PyAny>) -> Result<Phase, String> {
    match v.cast::<PyString>() {
        Ok(s) => Phase::from_str(&py_str(s)),
        Err(_) => Err(format!(
            "phase must be one of \"eval\", \"train\", \"prod\", got {v}"
        )),
    }
}
