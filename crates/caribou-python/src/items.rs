//! `Message`, `ToolExecution`, `Event` and `Grade`: Python classes holding an item of the model.
//!
//! Each class is `frozen` and holds an [`ItemData`]: the item's JSON, written once when it is
//! built, and the outcome of the model's checks on it. `log` copies that JSON into the record it
//! queues (`caribou::TraceHandle::try_log_json`), with no Python work left for later (the
//! exporter thread never touches Python objects). `Message` and `ToolExecution`, the items of
//! every LLM call, write their JSON straight from the Python values (`item_json`): their 500
//! characters of text are escaped from the interpreter's own UTF-8, with no `String`, no
//! `serde_json::Value` and no map made on the agent's hot path. `Event` and `Grade` are built as
//! model items first and written from them. The model item of any of them is parsed back from the
//! JSON only when something asks for it (getters, `to_dict`, `==`, `repr`): not a hot path.
//! Construction rules for odd values are in `fields` and `convert`.

use std::cell::RefCell;
use std::sync::OnceLock;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

use caribou::exporter::record_json::{ItemJson, write_item_body};
use caribou_model::validate::{
    MessageFields, ToolFields, check_item, check_message, check_metadata, check_tool_execution,
};
use caribou_model::{
    Event, Grade, GradeValue, Item, JsonMap, Limits, Message, ToolExecution, ValidationError,
};

use crate::convert::{map_to_py, py_str, serde_to_py, str_of, to_py};
use crate::fields::{
    bad_field, opt_amount, opt_count, opt_json, opt_map, opt_str, opt_text, required_str,
    required_text, type_name,
};
use crate::item_json::{write_map, write_value};

fn json_repr<T: serde::Serialize>(class: &str, value: &T) -> String {
    let body = serde_json::to_string(value).unwrap_or_default();
    format!("{class}({body})")
}

/// What an item object holds (see the module docs).
#[derive(Debug)]
pub struct ItemData {
    /// The item's JSON, `{"type":..,..}`: what `record_json::write_item_body` writes for it.
    json: Box<[u8]>,
    /// Why the model's checks (`validate::check_item`) refuse it, if they do: such an item is
    /// dropped (and counted, and warned about) when logged, as before. Boxed, like `model`: the
    /// object is moved a few times while pyo3 makes it, so it is kept small.
    invalid: Option<Box<ValidationError>>,
    /// The model item, parsed from `json` on first use.
    model: OnceLock<Box<Item>>,
    /// The item's `type`, for messages.
    kind: &'static str,
}

/// The scratch buffer is given back once a write made it larger than this.
const SCRATCH_KEEP: usize = 1 << 20;

thread_local! {
    /// Where an item's JSON is written before it is copied into its exact-size allocation.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl ItemData {
    /// An item written by `write` (into a reused buffer), with the outcome of its checks.
    fn written(
        kind: &'static str,
        write: impl FnOnce(&mut ItemJson<'_>) -> Result<(), ValidationError>,
    ) -> ItemData {
        // The buffer is taken out of the thread's slot while it is written, not borrowed: the
        // writing may run Python (a value's `__str__` or `model_dump`) that builds another item,
        // which then finds the slot empty and writes into a buffer of its own.
        let mut buf = SCRATCH.try_with(RefCell::take).unwrap_or_default();
        buf.clear();
        let mut w = ItemJson::start(&mut buf, kind);
        let checked = write(&mut w);
        w.finish();
        // The free JSON (content, arguments, ...) is bounded by the item's whole size: a bound on
        // each string, as Kestrel checks it, would cost a test per string on the hot path.
        let max = Limits::DEFAULT.max_text_bytes;
        let checked = checked.and_then(|()| {
            if buf.len() > max {
                Err(ValidationError {
                    index: None,
                    field: "item".to_owned(),
                    message: format!(
                        "its JSON is {} bytes; the limit is {max} per item (and per string in it)",
                        buf.len()
                    ),
                })
            } else {
                Ok(())
            }
        });
        let data = ItemData {
            json: Box::from(buf.as_slice()),
            invalid: checked.err().map(Box::new),
            model: OnceLock::new(),
            kind,
        };
        // One huge item must not keep its size in every thread that built one.
        if buf.capacity() <= SCRATCH_KEEP {
            // Fails only while the thread exits (its locals are gone): the buffer is dropped.
            let _ = SCRATCH.try_with(|slot| slot.replace(buf));
        }
        data
    }

    /// An item built as a model item first.
    fn from_item(item: Item) -> PyResult<ItemData> {
        let mut json = Vec::new();
        write_item_body(&mut json, &item).map_err(|e| {
            PyValueError::new_err(format!("cannot encode the {}: {e}", item.kind()))
        })?;
        Ok(ItemData {
            json: json.into_boxed_slice(),
            invalid: check_item(&item, &Limits::DEFAULT).err().map(Box::new),
            kind: item.kind(),
            model: OnceLock::from(Box::new(item)),
        })
    }

    /// The item's JSON, as `log` sends it.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// Why `log` drops it, if it does.
    pub fn checked(&self) -> Result<(), &ValidationError> {
        match &self.invalid {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Its `type`: `message`, `tool_execution`, `event`, `grade`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The model item (parsed from the JSON the first time).
    pub fn item(&self) -> PyResult<&Item> {
        if let Some(item) = self.model.get() {
            return Ok(item);
        }
        let parsed: Item = serde_json::from_slice(&self.json).map_err(|e| {
            PyValueError::new_err(format!(
                "caribou could not read back the {} it wrote ({e}); please report this",
                self.kind
            ))
        })?;
        Ok(self.model.get_or_init(|| Box::new(parsed)))
    }
}

impl PartialEq for ItemData {
    /// Equal items: the same JSON, or the same model item (a dict's keys in another order).
    fn eq(&self, other: &ItemData) -> bool {
        self.json == other.json || matches!((self.item(), other.item()), (Ok(a), Ok(b)) if a == b)
    }
}

/// An optional free-JSON field (see `convert::to_json`); `None` is absent.
fn json_field(w: &mut ItemJson<'_>, key: &str, v: Option<&Bound<'_, PyAny>>) {
    if let Some(v) = v.filter(|v| !v.is_none()) {
        write_value(w.key(key), v);
    }
}

/// An optional metadata mapping; anything that is not a mapping is dropped and warned about. A
/// mapping is checked as Kestrel checks it (`validate::check_metadata`), read back from what was
/// written (metadata on an item is rare: the hot path pays nothing for it).
fn map_field(
    w: &mut ItemJson<'_>,
    class: &str,
    key: &str,
    v: Option<&Bound<'_, PyAny>>,
) -> Result<(), ValidationError> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(());
    };
    let mut written = None;
    w.optional(key, |out| {
        let start = out.len();
        let ok = write_map(out, v);
        if ok {
            written = serde_json::from_slice::<JsonMap>(&out[start..]).ok();
        }
        ok
    });
    match written {
        Some(map) => check_metadata(&format!("item.{key}"), &map, &Limits::DEFAULT),
        None => {
            bad_field(v.py(), class, key, "a dict", v);
            Ok(())
        }
    }
}

/// The model item of an item object of kind `$variant`.
macro_rules! model_of {
    ($data:expr, $variant:ident) => {
        match $data.item()? {
            Item::$variant(x) => x,
            other => {
                return Err(PyValueError::new_err(format!(
                    "caribou holds a {} where a {} belongs; please report this",
                    other.kind(),
                    stringify!($variant)
                )))
            }
        }
    };
}

/// A chat message (user, assistant, system, tool).
#[pyclass(name = "Message", module = "caribou", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyMessage {
    /// Read by `log`, which queues the item's JSON.
    pub data: ItemData,
}

impl PyMessage {
    pub fn inner(&self) -> PyResult<&Message> {
        Ok(model_of!(self.data, Message))
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
        let role = required_text("Message", "role", role)?;
        let model = opt_text(model);
        let provider = opt_text(provider);
        let input_tokens = opt_count("Message", "input_tokens", input_tokens);
        let output_tokens = opt_count("Message", "output_tokens", output_tokens);
        let cost_usd = opt_amount("Message", "cost_usd", cost_usd);
        let data = ItemData::written("message", |w| {
            // The model's field order (`record_json::write_item_body`).
            w.str("role", &role);
            json_field(w, "content", content);
            json_field(w, "tool_calls", tool_calls);
            let tool_call_id = opt_text(tool_call_id);
            if let Some(v) = &tool_call_id {
                w.str("tool_call_id", v);
            }
            let name = opt_text(name);
            if let Some(v) = &name {
                w.str("name", v);
            }
            if let Some(v) = &model {
                w.str("model", v);
            }
            if let Some(v) = &provider {
                w.str("provider", v);
            }
            w.int("input_tokens", input_tokens);
            w.int("output_tokens", output_tokens);
            // Finite by `opt_amount`, so it cannot fail.
            let _ = w.number("cost_usd", cost_usd);
            map_field(w, "Message", "metadata", metadata)?;
            check_message(
                MessageFields {
                    role: &role,
                    tool_call_id: tool_call_id.as_deref(),
                    name: name.as_deref(),
                    model: model.as_deref(),
                    provider: provider.as_deref(),
                    input_tokens,
                    output_tokens,
                    cost_usd,
                },
                &Limits::DEFAULT,
            )
        });
        Ok(PyMessage { data })
    }

    #[getter]
    fn role(&self) -> PyResult<&str> {
        Ok(&self.inner()?.role)
    }
    #[getter]
    fn content<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()?
            .content
            .as_ref()
            .map(|v| to_py(py, v))
            .transpose()
    }
    #[getter]
    fn tool_calls<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()?
            .tool_calls
            .as_ref()
            .map(|v| to_py(py, v))
            .transpose()
    }
    #[getter]
    fn tool_call_id(&self) -> PyResult<Option<&str>> {
        Ok(self.inner()?.tool_call_id.as_deref())
    }
    #[getter]
    fn name(&self) -> PyResult<Option<&str>> {
        Ok(self.inner()?.name.as_deref())
    }
    #[getter]
    fn model(&self) -> PyResult<Option<&str>> {
        Ok(self.inner()?.model.as_deref())
    }
    #[getter]
    fn provider(&self) -> PyResult<Option<&str>> {
        Ok(self.inner()?.provider.as_deref())
    }
    #[getter]
    fn input_tokens(&self) -> PyResult<Option<u64>> {
        Ok(self.inner()?.input_tokens)
    }
    #[getter]
    fn output_tokens(&self) -> PyResult<Option<u64>> {
        Ok(self.inner()?.output_tokens)
    }
    #[getter]
    fn cost_usd(&self) -> PyResult<Option<f64>> {
        Ok(self.inner()?.cost_usd)
    }
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()?
            .metadata
            .as_ref()
            .map(|m| map_to_py(py, m).map(Bound::into_any))
            .transpose()
    }

    /// The item as sent to Kestrel (with `"type": "message"`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, self.data.item()?)
    }

    fn __repr__(&self) -> PyResult<String> {
        Ok(json_repr("Message", self.inner()?))
    }
}

/// One run of a tool the agent called.
#[pyclass(name = "ToolExecution", module = "caribou", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyToolExecution {
    /// Read by `log`, which queues the item's JSON.
    pub data: ItemData,
}

impl PyToolExecution {
    pub fn inner(&self) -> PyResult<&ToolExecution> {
        Ok(model_of!(self.data, ToolExecution))
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
        let name = required_text("ToolExecution", "name", name)?;
        let duration_ms = opt_amount("ToolExecution", "duration_ms", duration_ms);
        let data = ItemData::written("tool_execution", |w| {
            // The model's field order (`record_json::write_item_body`).
            w.str("name", &name);
            let call_id = opt_text(call_id);
            if let Some(v) = &call_id {
                w.str("call_id", v);
            }
            json_field(w, "arguments", arguments);
            json_field(w, "result", result);
            let requestor = opt_text(requestor);
            if let Some(v) = &requestor {
                w.str("requestor", v);
            }
            if let Some(e) = error.filter(|e| !e.is_none()) {
                w.str("error", &error_text(e));
            }
            // Finite by `opt_amount`, so it cannot fail.
            let _ = w.number("duration_ms", duration_ms);
            check_tool_execution(
                ToolFields {
                    name: &name,
                    call_id: call_id.as_deref(),
                    requestor: requestor.as_deref(),
                    duration_ms,
                },
                &Limits::DEFAULT,
            )
        });
        Ok(PyToolExecution { data })
    }

    #[getter]
    fn name(&self) -> PyResult<&str> {
        Ok(&self.inner()?.name)
    }
    #[getter]
    fn call_id(&self) -> PyResult<Option<&str>> {
        Ok(self.inner()?.call_id.as_deref())
    }
    #[getter]
    fn arguments<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()?
            .arguments
            .as_ref()
            .map(|v| to_py(py, v))
            .transpose()
    }
    #[getter]
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()?
            .result
            .as_ref()
            .map(|v| to_py(py, v))
            .transpose()
    }
    #[getter]
    fn requestor(&self) -> PyResult<Option<&str>> {
        Ok(self.inner()?.requestor.as_deref())
    }
    #[getter]
    fn error(&self) -> PyResult<Option<&str>> {
        Ok(self.inner()?.error.as_deref())
    }
    #[getter]
    fn duration_ms(&self) -> PyResult<Option<f64>> {
        Ok(self.inner()?.duration_ms)
    }

    /// The item as sent to Kestrel (with `"type": "tool_execution"`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, self.data.item()?)
    }

    fn __repr__(&self) -> PyResult<String> {
        Ok(json_repr("ToolExecution", self.inner()?))
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
#[derive(Debug, PartialEq)]
pub struct PyEvent {
    /// Read by `log`, which queues the item's JSON.
    pub data: ItemData,
}

impl PyEvent {
    pub fn inner(&self) -> PyResult<&Event> {
        Ok(model_of!(self.data, Event))
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
        let data = ItemData::from_item(Item::Event(Event {
            name: required_str("Event", "name", name)?,
            data: opt_json(data),
            level: opt_str(level).unwrap_or_else(|| "info".to_owned()),
        }))?;
        Ok(PyEvent { data })
    }

    #[getter]
    fn name(&self) -> PyResult<&str> {
        Ok(&self.inner()?.name)
    }
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()?
            .data
            .as_ref()
            .map(|v| to_py(py, v))
            .transpose()
    }
    #[getter]
    fn level(&self) -> PyResult<&str> {
        Ok(&self.inner()?.level)
    }

    /// The item as sent to Kestrel (with `"type": "event"`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, self.data.item()?)
    }

    fn __repr__(&self) -> PyResult<String> {
        Ok(json_repr("Event", self.inner()?))
    }
}

/// A score for a rollout: a reward, a correctness flag, a label.
#[pyclass(name = "Grade", module = "caribou", frozen, eq)]
#[derive(Debug, PartialEq)]
pub struct PyGrade {
    /// Read by `log`, which queues the item's JSON.
    pub data: ItemData,
}

impl PyGrade {
    pub fn inner(&self) -> PyResult<&Grade> {
        Ok(model_of!(self.data, Grade))
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
        let data = ItemData::from_item(Item::Grade(Grade {
            name: required_str("Grade", "name", name)?,
            value: grade_value(value)?,
            comment: opt_str(comment),
            grader: opt_str(grader),
            metadata: opt_map("Grade", "metadata", metadata),
        }))?;
        Ok(PyGrade { data })
    }

    #[getter]
    fn name(&self) -> PyResult<&str> {
        Ok(&self.inner()?.name)
    }
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match &self.inner()?.value {
            GradeValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
            GradeValue::Number(x) => x.into_pyobject(py)?.into_any(),
            GradeValue::Label(s) => PyString::new(py, s).into_any(),
        })
    }
    #[getter]
    fn comment(&self) -> PyResult<Option<&str>> {
        Ok(self.inner()?.comment.as_deref())
    }
    #[getter]
    fn grader(&self) -> PyResult<Option<&str>> {
        Ok(self.inner()?.grader.as_deref())
    }
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner()?
            .metadata
            .as_ref()
            .map(|m| map_to_py(py, m).map(Bound::into_any))
            .transpose()
    }

    /// The item as sent to Kestrel (with `"type": "grade"`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, self.data.item()?)
    }

    fn __repr__(&self) -> PyResult<String> {
        Ok(json_repr("Grade", self.inner()?))
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

/// The [`ItemData`] of any of the four item classes (borrowed: the Python object stays usable,
/// and the item is immutable); `None` for any other object.
pub fn with_item<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&ItemData) -> R) -> Option<R> {
    if let Ok(m) = obj.cast::<PyMessage>() {
        return Some(f(&m.get().data));
    }
    if let Ok(t) = obj.cast::<PyToolExecution>() {
        return Some(f(&t.get().data));
    }
    if let Ok(e) = obj.cast::<PyEvent>() {
        return Some(f(&e.get().data));
    }
    if let Ok(g) = obj.cast::<PyGrade>() {
        return Some(f(&g.get().data));
    }
    None
}
