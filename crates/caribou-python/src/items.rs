//! `Message`, `ToolExecution`, `Event` and `Grade`: Python classes wrapping the model's items.
//!
//! Each class is `frozen` and holds the finished `caribou_model` value, converted once at
//! construction: logging it queues its JSON, written then, on the logging thread, with no Python
//! work left for later (the exporter thread never touches Python objects, and the item is freed
//! with its Python object, on the thread that made it). Construction rules for odd
//! values are in `fields`. Getters convert back to Python on each access (not a hot path).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

use caribou_model::{Event, Grade, GradeValue, Item, Message, ToolExecution};

use crate::convert::{map_to_py, py_str, serde_to_py, str_of, to_py};
use crate::fields::{opt_amount, opt_count, opt_json, opt_map, opt_str, required_str, type_name};

fn json_repr<T: serde::Serialize>(class: &str, value: &T) -> String {
    let body = serde_json::to_string(value).unwrap_or_default();
    format!("{class}({body})")
}

/// A chat message (user, assistant, system, tool).
#[pyclass(name = "Message", module = "caribou", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyMessage {
    /// Read by `log`, which queues the item's JSON (not the item).
    pub item: Item,
}

impl PyMessage {
    pub fn inner(&self) -> &Message {
        match &self.item {
            Item::Message(x) => x,
            // Only the constructor makes one, always of this kind.
            _ => unreachable!("a Message holds a Message"),
        }
    }
}

#[pymethods]
impl PyMessage {
    #[new]
    #[pyo3(signature = (role, content=None, tool_calls=None, tool_call_id=None, name=None, model=None,
        provider=None, input_tokens=None, output_tokens=None, cost_usd=None, metadata=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        role: &Bound<'_, PyAny>,
        content: Option<&Bound<'_, PyAny>>,
        tool_calls: Option<&Bound<'_, PyAny>>,
        tool_call_id: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
        model: Option<&Bound<'_, PyAny>>,
        provider: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        cost_usd: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(PyMessage {
            item: Item::Message(Message {
                role: required_str("Message", "role", role)?,
                content: opt_json(content),
                tool_calls: opt_json(tool_calls),
                tool_call_id: opt_str(tool_call_id),
                name: opt_str(name),
                model: opt_str(model),
                provider: opt_str(provider),
                input_tokens: opt_count("Message", "input_tokens", input_tokens),
                output_tokens: opt_count("Message", "output_tokens", output_tokens),
                cost_usd: opt_amount("Message", "cost_usd", cost_usd),
                metadata: opt_map("Message", "metadata", metadata),
            }),
        })
    }

    #[getter]
    fn role(&self) -> &str {
        &self.inner().role
    }
    #[getter]
    fn content<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()
            .content
            .as_ref()
            .map(|v| to_py(py, v))
            .transpose()
    }
    #[getter]
    fn tool_calls<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()
            .tool_calls
            .as_ref()
            .map(|v| to_py(py, v))
            .transpose()
    }
    #[getter]
    fn tool_call_id(&self) -> Option<&str> {
        self.inner().tool_call_id.as_deref()
    }
    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner().name.as_deref()
    }
    #[getter]
    fn model(&self) -> Option<&str> {
        self.inner().model.as_deref()
    }
    #[getter]
    fn provider(&self) -> Option<&str> {
        self.inner().provider.as_deref()
    }
    #[getter]
    fn input_tokens(&self) -> Option<u64> {
        self.inner().input_tokens
    }
    #[getter]
    fn output_tokens(&self) -> Option<u64> {
        self.inner().output_tokens
    }
    #[getter]
    fn cost_usd(&self) -> Option<f64> {
        self.inner().cost_usd
    }
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()
            .metadata
            .as_ref()
            .map(|m| map_to_py(py, m).map(Bound::into_any))
            .transpose()
    }

    /// The item as sent to Kestrel (with `"type": "message"`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.item)
    }

    fn __repr__(&self) -> String {
        json_repr("Message", self.inner())
    }
}

/// One run of a tool the agent called.
#[pyclass(name = "ToolExecution", module = "caribou", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyToolExecution {
    /// Read by `log`, which queues the item's JSON (not the item).
    pub item: Item,
}

impl PyToolExecution {
    pub fn inner(&self) -> &ToolExecution {
        match &self.item {
            Item::ToolExecution(x) => x,
            // Only the constructor makes one, always of this kind.
            _ => unreachable!("a ToolExecution holds a ToolExecution"),
        }
    }
}

#[pymethods]
impl PyToolExecution {
    #[new]
    #[pyo3(signature = (name, call_id=None, arguments=None, result=None, requestor=None, error=None,
        duration_ms=None))]
    fn new(
        name: &Bound<'_, PyAny>,
        call_id: Option<&Bound<'_, PyAny>>,
        arguments: Option<&Bound<'_, PyAny>>,
        result: Option<&Bound<'_, PyAny>>,
        requestor: Option<&Bound<'_, PyAny>>,
        error: Option<&Bound<'_, PyAny>>,
        duration_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(PyToolExecution {
            item: Item::ToolExecution(ToolExecution {
                name: required_str("ToolExecution", "name", name)?,
                call_id: opt_str(call_id),
                arguments: opt_json(arguments),
                result: opt_json(result),
                requestor: opt_str(requestor),
                error: error.filter(|e| !e.is_none()).map(error_text),
                duration_ms: opt_amount("ToolExecution", "duration_ms", duration_ms),
            }),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.inner().name
    }
    #[getter]
    fn call_id(&self) -> Option<&str> {
        self.inner().call_id.as_deref()
    }
    #[getter]
    fn arguments<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()
            .arguments
            .as_ref()
            .map(|v| to_py(py, v))
            .transpose()
    }
    #[getter]
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()
            .result
            .as_ref()
            .map(|v| to_py(py, v))
            .transpose()
    }
    #[getter]
    fn requestor(&self) -> Option<&str> {
        self.inner().requestor.as_deref()
    }
    #[getter]
    fn error(&self) -> Option<&str> {
        self.inner().error.as_deref()
    }
    #[getter]
    fn duration_ms(&self) -> Option<f64> {
        self.inner().duration_ms
    }

    /// The item as sent to Kestrel (with `"type": "tool_execution"`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.item)
    }

    fn __repr__(&self) -> String {
        json_repr("ToolExecution", self.inner())
    }
}

/// An exception as `"TypeName: message"`; any other value as `str(value)`.
fn error_text(e: &Bound<'_, PyAny>) -> String {
    if e.is_instance_of::<pyo3::exceptions::PyBaseException>() {
        let text = str_of(e);
        let name = type_name(e);
        if text.is_empty() {
            name
        } else {
            format!("{name}: {text}")
        }
    } else {
        str_of(e)
    }
}

/// A mark on the timeline: a retrieval, a guardrail hit, anything worth noting.
#[pyclass(name = "Event", module = "caribou", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyEvent {
    /// Read by `log`, which queues the item's JSON (not the item).
    pub item: Item,
}

impl PyEvent {
    pub fn inner(&self) -> &Event {
        match &self.item {
            Item::Event(x) => x,
            // Only the constructor makes one, always of this kind.
            _ => unreachable!("a Event holds a Event"),
        }
    }
}

#[pymethods]
impl PyEvent {
    #[new]
    #[pyo3(signature = (name, data=None, level=None), text_signature = "(name, data=None, level='info')")]
    fn new(
        name: &Bound<'_, PyAny>,
        data: Option<&Bound<'_, PyAny>>,
        level: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(PyEvent {
            item: Item::Event(Event {
                name: required_str("Event", "name", name)?,
                data: opt_json(data),
                level: opt_str(level).unwrap_or_else(|| "info".to_owned()),
            }),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.inner().name
    }
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner().data.as_ref().map(|v| to_py(py, v)).transpose()
    }
    #[getter]
    fn level(&self) -> &str {
        &self.inner().level
    }

    /// The item as sent to Kestrel (with `"type": "event"`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.item)
    }

    fn __repr__(&self) -> String {
        json_repr("Event", self.inner())
    }
}

/// A score for a rollout: a reward, a correctness flag, a label.
#[pyclass(name = "Grade", module = "caribou", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyGrade {
    /// Read by `log`, which queues the item's JSON (not the item).
    pub item: Item,
}

impl PyGrade {
    pub fn inner(&self) -> &Grade {
        match &self.item {
            Item::Grade(x) => x,
            // Only the constructor makes one, always of this kind.
            _ => unreachable!("a Grade holds a Grade"),
        }
    }
}

#[pymethods]
impl PyGrade {
    #[new]
    #[pyo3(signature = (name, value, comment=None, grader=None, metadata=None))]
    fn new(
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        comment: Option<&Bound<'_, PyAny>>,
        grader: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(PyGrade {
            item: Item::Grade(Grade {
                name: required_str("Grade", "name", name)?,
                value: grade_value(value)?,
                comment: opt_str(comment),
                grader: opt_str(grader),
                metadata: opt_map("Grade", "metadata", metadata),
            }),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.inner().name
    }
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match &self.inner().value {
            GradeValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
            GradeValue::Number(x) => x.into_pyobject(py)?.into_any(),
            GradeValue::Label(s) => PyString::new(py, s).into_any(),
        })
    }
    #[getter]
    fn comment(&self) -> Option<&str> {
        self.inner().comment.as_deref()
    }
    #[getter]
    fn grader(&self) -> Option<&str> {
        self.inner().grader.as_deref()
    }
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()
            .metadata
            .as_ref()
            .map(|m| map_to_py(py, m).map(Bound::into_any))
            .transpose()
    }

    /// The item as sent to Kestrel (with `"type": "grade"`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.item)
    }

    fn __repr__(&self) -> String {
        json_repr("Grade", self.inner())
    }
}

/// A grade's value: `bool`, a number or a `str` label; anything else is the caller's mistake.
fn grade_value(v: &Bound<'_, PyAny>) -> PyResult<GradeValue> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(GradeValue::Bool(b.is_true()));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(GradeValue::Number(f.value()));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(GradeValue::Number(v.extract::<f64>()?));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(GradeValue::Label(py_str(s)));
    }
    // Decimal, numpy scalars.
    if let Ok(x) = v.extract::<f64>() {
        return Ok(GradeValue::Number(x));
    }
    Err(PyTypeError::new_err(format!(
        "Grade.value must be a number, a bool or a str, got {}",
        type_name(v)
    )))
}

/// Runs `f` on the model item of any of the four item classes (borrowed: the Python object stays
/// usable, and the item is immutable); `None` for any other object.
pub fn with_item<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&Item) -> R) -> Option<R> {
    if let Ok(m) = obj.cast::<PyMessage>() {
        return Some(f(&m.get().item));
    }
    if let Ok(t) = obj.cast::<PyToolExecution>() {
        return Some(f(&t.get().item));
    }
    if let Ok(e) = obj.cast::<PyEvent>() {
        return Some(f(&e.get().item));
    }
    if let Ok(g) = obj.cast::<PyGrade>() {
        return Some(f(&g.get().item));
    }
    None
}
