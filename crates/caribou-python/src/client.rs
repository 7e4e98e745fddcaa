//! `get_kestrel_client()`: the Kestrel API for set-up (projects, runs, steps, datapoints),
//! grading after the fact and reading back.
//!
//! A thin wrapper of `caribou::KestrelClient`: every call releases the GIL while it waits on the
//! network. With no endpoint configured the client is disabled and every method returns `None`
//! without doing anything. Server errors raise `caribou.KestrelError` carrying the server's
//! message, HTTP status and error code.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::Value;

use caribou::{ClientError, KestrelClient};
use caribou_model::api::{AddGrade, CreateRun, NewDatapoint, Project, Run, TraceFilter};

use crate::convert::{map_to_py, py_str, serde_to_py, str_of, to_json, to_json_map};
use crate::fields::type_name;
use crate::items::PyGrade;
use crate::status::{PyRolloutStatus, phase_of};

pyo3::create_exception!(
    caribou,
    KestrelError,
    pyo3::exceptions::PyException,
    "Kestrel answered with an error (its message is the exception's text; `.status` is the HTTP \
     status, `.code` the error code) or could not be reached (`.status` is None)."
);

fn to_py_err(py: Python<'_>, e: ClientError) -> PyErr {
    let (status, code, message) = match e {
        ClientError::Api {
            status,
            code,
            message,
        } => (Some(status), Some(code), message),
        ClientError::Transport(m) => (None, Some("transport".to_owned()), m),
        ClientError::Decode(m) => (None, Some("decode".to_owned()), m),
        ClientError::Disabled => (
            None,
            Some("disabled".to_owned()),
            "the Kestrel client is disabled".to_owned(),
        ),
    };
    let err = KestrelError::new_err(message);
    let value = err.value(py);
    // Attributes on a fresh exception object cannot fail in practice; if they did, the error
    // itself (with its message) is still what the caller gets.
    let _ = value.setattr("status", status);
    let _ = value.setattr("code", code);
    err
}

/// A project: the home of runs and traces.
#[pyclass(name = "Project", module = "caribou", frozen)]
#[derive(Debug, Clone)]
pub struct PyProject {
    inner: Project,
}

#[pymethods]
impl PyProject {
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    /// Microseconds since the Unix epoch.
    #[getter]
    fn created_at(&self) -> i64 {
        self.inner.created_at
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        format!("Project(name={:?})", self.inner.name)
    }
}

/// An eval or training run (its `id` is what `configure(run_id=...)` takes).
#[pyclass(name = "Run", module = "caribou", frozen)]
#[derive(Debug, Clone)]
pub struct PyRun {
    inner: Run,
}

#[pymethods]
impl PyRun {
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }
    #[getter]
    fn project(&self) -> &str {
        &self.inner.project
    }
    #[getter]
    fn phase(&self) -> &'static str {
        self.inner.phase.as_str()
    }
    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        map_to_py(py, &self.inner.config)
    }
    /// Microseconds since the Unix epoch.
    #[getter]
    fn created_at(&self) -> i64 {
        self.inner.created_at
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        format!(
            "Run(id={:?}, project={:?}, phase={:?})",
            self.inner.id,
            self.inner.project,
            self.inner.phase.as_str()
        )
    }
}

/// The Kestrel API client; get it with `caribou.get_kestrel_client()`.
#[pyclass(name = "KestrelClient", module = "caribou", frozen)]
#[derive(Debug)]
pub struct PyKestrelClient {
    inner: KestrelClient,
}

/// A client for the Kestrel of the current configuration (`configure()` or the environment).
#[pyfunction]
pub fn get_kestrel_client(py: Python<'_>) -> PyKestrelClient {
    let inner = KestrelClient::from_config(&caribou::current_config());
    // The first use without `configure()` reads the environment: a bad KESTREL_URL shows here.
    crate::warn::log_notices(py);
    PyKestrelClient { inner }
}

impl PyKestrelClient {
    /// Runs `f` without the GIL when enabled; `None` when disabled.
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&KestrelClient) -> Result<T, ClientError> + Send,
    ) -> PyResult<Option<T>> {
        if !self.inner.enabled() {
            return Ok(None);
        }
        match py.detach(|| f(&self.inner)) {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Disabled) => Ok(None),
            Err(e) => Err(to_py_err(py, e)),
        }
    }

    /// [`Self::call`], with the answer turned into Python dicts and lists.
    fn call_to_py<'py, T: Send + serde::Serialize>(
        &self,
        py: Python<'py>,
        f: impl FnOnce(&KestrelClient) -> Result<T, ClientError> + Send,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.call(py, f)?.map(|v| serde_to_py(py, &v)).transpose()
    }
}

#[pymethods]
impl PyKestrelClient {
    /// True when an endpoint is configured.
    #[getter]
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    /// Creates the project, or returns it when it exists.
    fn get_or_create_project(&self, py: Python<'_>, name: String) -> PyResult<Option<PyProject>> {
        Ok(self
            .call(py, |c| c.get_or_create_project(&name))?
            .map(|inner| PyProject { inner }))
    }

    /// Creates an eval or training run; Kestrel issues its id (`run.id`).
    #[pyo3(signature = (project, phase, name=None, config=None))]
    fn create_run(
        &self,
        py: Python<'_>,
        project: String,
        phase: &Bound<'_, PyAny>,
        name: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<PyRun>> {
        let phase = phase_of(phase).map_err(PyValueError::new_err)?;
        let config = match config.filter(|c| !c.is_none()) {
            None => None,
            Some(c) => Some(to_json_map(c).ok_or_else(|| {
                PyTypeError::new_err(format!("config must be a dict, got {}", type_name(c)))
            })?),
        };
        let req = CreateRun {
            project,
            phase,
            name,
            config,
        };
        Ok(self
            .call(py, move |c| c.create_run(req))?
            .map(|inner| PyRun { inner }))
    }

    /// A run by id.
    fn get_run(&self, py: Python<'_>, run_id: String) -> PyResult<Option<PyRun>> {
        Ok(self
            .call(py, |c| c.get_run(&run_id))?
            .map(|inner| PyRun { inner }))
    }

    /// Registers training step `step` of a run (idempotent); returns the step's figures.
    fn create_run_step<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
        step: i64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.call_to_py(py, |c| c.create_run_step(&run_id, step))
    }

    /// The steps of a run with their figures: `rollouts`, `status` (count per status), `grades`
    /// (per name: `count`, `mean`, `min`, `max`, `p50`, `p90`), tokens, `cost_usd`,
    /// `duration_ms_mean`.
    fn get_run_steps<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.call_to_py(py, |c| c.get_run_steps(&run_id))
    }

    /// Adds datapoints (`{"id", "input", "expected", "metadata"}` dicts) to a run's project;
    /// returns how many were stored.
    fn add_datapoints(
        &self,
        py: Python<'_>,
        run_id: String,
        datapoints: &Bound<'_, PyAny>,
    ) -> PyResult<Option<u64>> {
        let mut parsed = Vec::new();
        for (i, dp) in datapoints.try_iter()?.enumerate() {
            parsed.push(
                datapoint(&dp?)
                    .map_err(|e| PyValueError::new_err(format!("datapoints[{i}]: {e}")))?,
            );
        }
        self.call(py, move |c| c.add_datapoints(&run_id, parsed))
    }

    /// Adds a grade to a finished trace (grading after the fact); returns the stored item.
    fn grade<'py>(
        &self,
        py: Python<'py>,
        trace_id: String,
        grade: PyRef<'_, PyGrade>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let g = grade.inner()?.clone();
        let req = AddGrade {
            name: g.name,
            value: g.value,
            comment: g.comment,
            grader: g.grader,
            metadata: g.metadata,
        };
        self.call_to_py(py, move |c| c.grade(&trace_id, req))
    }

    /// One trace with its turns and items, as a dict.
    fn get_trace<'py>(
        &self,
        py: Python<'py>,
        trace_id: String,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.call_to_py(py, |c| c.get_trace(&trace_id))
    }

    /// A page of traces: `{"data": [...], "next_cursor": ...}`. Filters: `project`, `run_id`,
    /// `phase`, `step`, `status`, `datapoint_id`, `sort`, `limit`, `cursor`.
    #[pyo3(signature = (**filters))]
    fn list_traces<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let filter = trace_filter("list_traces", filters)?;
        self.call_to_py(py, move |c| c.list_traces(&filter))
    }

    /// Traces matching a search-language query (`status:error tag:premium_tier "timed out"`),
    /// with the same filters as `list_traces`; a page as `list_traces` answers.
    #[pyo3(signature = (query, **filters))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        query: String,
        filters: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let filter = trace_filter("search", filters)?;
        self.call_to_py(py, move |c| c.search(&query, &filter))
    }

    fn __repr__(&self) -> String {
        format!(
            "KestrelClient(enabled={})",
            if self.inner.enabled() {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// Keyword filters as a `TraceFilter` (unknown keys and bad values are a `TypeError` naming them).
fn trace_filter(call: &str, filters: Option<&Bound<'_, PyDict>>) -> PyResult<TraceFilter> {
    let mut map = serde_json::Map::new();
    for (k, v) in filters.into_iter().flat_map(|f| f.iter()) {
        if v.is_none() {
            continue;
        }
        let key = k
            .cast::<PyString>()
            .map(py_str)
            .unwrap_or_else(|_| str_of(&k));
        let value = match v.cast::<PyRolloutStatus>() {
            Ok(s) => Value::String(
                caribou_model::RolloutStatus::from(*s.get())
                    .as_str()
                    .to_owned(),
            ),
            Err(_) => to_json(&v),
        };
        map.insert(key, value);
    }
    serde_json::from_value(Value::Object(map))
        .map_err(|e| PyTypeError::new_err(format!("{call}(): {e}")))
}

/// A datapoint from a dict (or any object `to_json` turns into one); a non-text id is `str(id)`.
fn datapoint(dp: &Bound<'_, PyAny>) -> Result<NewDatapoint, String> {
    let mut value = to_json(dp);
    let Value::Object(map) = &mut value else {
        return Err(format!(
            "expected a dict with \"id\", got {}",
            type_name(dp)
        ));
    };
    if let Some(id) = map.get_mut("id")
        && !id.is_string()
        && !id.is_null()
    {
        let text = match &*id {
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        *id = Value::String(text);
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}
