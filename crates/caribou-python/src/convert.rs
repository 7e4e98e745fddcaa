//! Python values to JSON and back.
//!
//! `content`, `tool_calls`, `arguments`, `result`, event `data` and metadata take whatever an
//! OpenAI- or Anthropic-style client hands the agent, so [`to_json`] never fails:
//!
//! - `str`, `int`, `float`, `bool`, `None`, `dict`, `list` and `tuple` map to JSON as expected; a
//!   JSON *string* stays the string given (it is not parsed).
//! - objects with `model_dump()` (pydantic models, as the OpenAI and Anthropic SDKs return) are
//!   dumped with `mode="json"` and converted; dataclass instances go through
//!   `dataclasses.asdict`.
//! - `bytes` become text (UTF-8, invalid bytes replaced); sets become lists; dict keys that are
//!   not strings become `str(key)`.
//! - anything else, and anything whose conversion raises, becomes `str(obj)`. Numbers JSON
//!   cannot hold (NaN, infinities, integers beyond 64 bits) become their `str`.
//!
//! Nesting is cut at [`MAX_DEPTH`] (deeper values become `str(value)`), which also ends
//! self-referencing structures.
//!
//! [`to_py`] turns JSON answers of the Kestrel API into plain Python objects.

use std::borrow::Cow;

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString,
    PyTuple, PyType,
};
use serde_json::{Map, Number, Value};

use caribou_model::JsonMap;

/// Deeper values are kept as their `str`: JSON from LLM clients is never this deep, and the cut
/// ends cycles (a list that contains itself) without tracking ids.
pub const MAX_DEPTH: u32 = 64;

/// Converts any Python value to JSON, as described in the module docs. Never fails.
pub fn to_json(obj: &Bound<'_, PyAny>) -> Value {
    convert(obj, 0)
}

/// The text of a Python `str`, borrowed from the interpreter when it can be; lone surrogates are
/// replaced instead of failing.
pub fn text<'a>(s: &'a Bound<'_, PyString>) -> Cow<'a, str> {
    match s.to_cow() {
        Ok(cow) => cow,
        Err(_) => Cow::Owned(s.to_string_lossy().into_owned()),
    }
}

/// [`text`] as an owned `String`.
pub fn py_str(s: &Bound<'_, PyString>) -> String {
    text(s).into_owned()
}

/// `str(obj)`, borrowed when `obj` is a `str` (see [`str_of`]).
pub fn text_of<'a>(obj: &'a Bound<'_, PyAny>) -> Cow<'a, str> {
    match obj.cast::<PyString>() {
        Ok(s) => text(s),
        Err(_) => Cow::Owned(str_of(obj)),
    }
}

/// `str(obj)`, or a placeholder naming the type when `__str__` itself raises.
pub fn str_of(obj: &Bound<'_, PyAny>) -> String {
    if let Ok(s) = obj.cast::<PyString>() {
        return py_str(s);
    }
    match obj.str() {
        Ok(s) => py_str(&s),
        Err(_) => {
            let name = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "object".to_owned());
            format!("<unprintable {name}>")
        }
    }
}

/// A Python mapping converted to a JSON object (for metadata). `None` when `obj` is not a dict
/// or a mapping with `items()`.
pub fn to_json_map(obj: &Bound<'_, PyAny>) -> Option<JsonMap> {
    if let Ok(d) = obj.cast::<PyDict>() {
        return Some(dict_to_map(d, 0));
    }
    if obj.hasattr(intern!(obj.py(), "items")).unwrap_or(false)
        && let Ok(d) = obj.py().get_type::<PyDict>().call1((obj,))
        && let Ok(d) = d.cast::<PyDict>()
    {
        return Some(dict_to_map(d, 0));
    }
    match to_json(obj) {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

pub(crate) fn convert(obj: &Bound<'_, PyAny>, depth: u32) -> Value {
    // The common cases first, cheapest checks first: strings are what agents log most.
    if let Ok(s) = obj.cast::<PyString>() {
        return Value::String(py_str(s));
    }
    if obj.is_none() {
        return Value::Null;
    }
    if depth >= MAX_DEPTH {
        return Value::String(str_of(obj));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return Value::Object(dict_to_map(d, depth));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return Value::Array(l.iter().map(|v| convert(&v, depth + 1)).collect());
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Value::Bool(b.is_true());
    }
    if obj.is_instance_of::<PyInt>() {
        return int_to_json(obj);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return float_to_json(f.value());
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return Value::Array(t.iter().map(|v| convert(&v, depth + 1)).collect());
    }
    convert_other(obj, depth).unwrap_or_else(|_| Value::String(str_of(obj)))
}

fn convert_other(obj: &Bound<'_, PyAny>, depth: u32) -> PyResult<Value> {
    let py = obj.py();
    if obj.is_instance_of::<PyType>() {
        return Ok(Value::String(str_of(obj)));
    }
    if obj.hasattr(intern!(py, "model_dump"))? {
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "mode"), intern!(py, "json"))?;
        let dumped = match obj.call_method(intern!(py, "model_dump"), (), Some(&kwargs)) {
            Ok(v) => v,
            // Not pydantic v2 after all (no `mode`): the plain call.
            Err(e) if e.is_instance_of::<PyTypeError>(py) => {
                obj.call_method0(intern!(py, "model_dump"))?
            }
            Err(e) => return Err(e),
        };
        return Ok(convert(&dumped, depth + 1));
    }
    if obj.hasattr(intern!(py, "__dataclass_fields__"))? {
        let dumped = asdict(py)?.call1((obj,))?;
        return Ok(convert(&dumped, depth + 1));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::String(
            String::from_utf8_lossy(b.as_bytes()).into_owned(),
        ));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::String(
            String::from_utf8_lossy(&b.to_vec()).into_owned(),
        ));
    }
    if obj.is_instance_of::<PySet>() || obj.is_instance_of::<PyFrozenSet>() {
        let items: Vec<Value> = obj
            .try_iter()?
            .map(|v| v.map(|v| convert(&v, depth + 1)))
            .collect::<PyResult<_>>()?;
        return Ok(Value::Array(items));
    }
    Ok(Value::String(str_of(obj)))
}

fn dict_to_map(d: &Bound<'_, PyDict>, depth: u32) -> Map<String, Value> {
    let mut map = Map::with_capacity(d.len());
    for (k, v) in d.iter() {
        let key = match k.cast::<PyString>() {
            Ok(s) => py_str(s),
            Err(_) => str_of(&k),
        };
        map.insert(key, convert(&v, depth + 1));
    }
    map
}

fn int_to_json(obj: &Bound<'_, PyAny>) -> Value {
    if let Ok(i) = obj.extract::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = obj.extract::<u64>() {
        return Value::Number(u.into());
    }
    // Beyond 64 bits: JSON numbers would lose digits, the text keeps them.
    Value::String(str_of(obj))
}

fn float_to_json(x: f64) -> Value {
    match Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None => Value::String(if x.is_nan() {
            "NaN".to_owned()
        } else if x > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        }),
    }
}

fn asdict(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static ASDICT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    ASDICT
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("dataclasses")?.getattr("asdict")?.unbind())
        })
        .map(|f| f.bind(py))
}

/// Converts JSON (an API answer) to plain Python objects: dicts, lists, str, int, float, bool,
/// None.
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => map_to_py(py, map)?.into_any(),
    })
}

/// A JSON object as a Python dict.
pub fn map_to_py<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in map {
        dict.set_item(k, to_py(py, v)?)?;
    }
    Ok(dict)
}

/// Any serializable answer as Python objects (through its JSON form).
pub fn serde_to_py<'py, T: serde::Serialize>(
    py: Python<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value).map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!("cannot convert the answer: {e}"))
    })?;
    to_py(py, &json)
}
