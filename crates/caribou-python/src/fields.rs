//! Reading constructor arguments leniently.
//!
//! An item is built inside the agent's own code, on its hot path, from values an LLM client
//! returned; a token count that arrives as `"12"` or `12.0` must not crash the agent. Required
//! fields (`role`, `name`, a grade's `value`) with a wrong type raise `TypeError` at construction,
//! as any Python constructor would. Optional fields are coerced when the meaning is plain
//! (`12.0` → 12 tokens, `"0.003"` → a cost) and otherwise dropped, counted and warned about once
//! ([`Warn::BadField`]).

use std::borrow::Cow;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};
use serde_json::Value;

use caribou_model::JsonMap;

use crate::convert::{py_str, str_of, text, text_of, to_json, to_json_map};
use crate::warn::{Warn, warn_once};

/// A required text field: a `str` (or a subclass, such as a `StrEnum`), else `TypeError`;
/// borrowed from the interpreter when it can be.
pub fn required_text<'a>(
    class: &str,
    field: &str,
    v: &'a Bound<'_, PyAny>,
) -> PyResult<Cow<'a, str>> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(text(s)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{class}.{field} must be a str, got {}",
            type_name(v)
        ))),
    }
}

/// [`required_text`] as an owned `String`.
pub fn required_str(class: &str, field: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    required_text(class, field, v).map(Cow::into_owned)
}

/// An optional text field: `str` as is, anything else as `str(value)` (an enum, a number);
/// `None` is absent.
pub fn opt_text<'a>(v: Option<&'a Bound<'_, PyAny>>) -> Option<Cow<'a, str>> {
    v.filter(|v| !v.is_none()).map(text_of)
}

/// [`opt_text`] as an owned `String`.
pub fn opt_str(v: Option<&Bound<'_, PyAny>>) -> Option<String> {
    opt_text(v).map(Cow::into_owned)
}

/// An optional free-JSON field (content, arguments, ...); see `convert::to_json`.
pub fn opt_json(v: Option<&Bound<'_, PyAny>>) -> Option<Value> {
    match v {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(to_json(v)),
    }
}

/// An optional metadata mapping; anything that is not a mapping is dropped and warned about.
pub fn opt_map(class: &str, field: &str, v: Option<&Bound<'_, PyAny>>) -> Option<JsonMap> {
    let v = v.filter(|v| !v.is_none())?;
    let map = to_json_map(v);
    if map.is_none() {
        bad_field(v.py(), class, field, "a dict", v);
    }
    map
}

/// An optional count (tokens): a non-negative int, an integral float or a numeric string.
pub fn opt_count(class: &str, field: &str, v: Option<&Bound<'_, PyAny>>) -> Option<u64> {
    let v = v.filter(|v| !v.is_none())?;
    let parsed = if v.is_instance_of::<PyBool>() {
        None
    } else if v.is_instance_of::<PyInt>() {
        v.extract::<u64>().ok()
    } else if let Ok(f) = v.cast::<PyFloat>() {
        let x = f.value();
        // Exactly representable integers only; 2^53 tokens is far beyond any real count.
        (x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x < 9.0e15).then_some(x as u64)
    } else if let Ok(s) = v.cast::<PyString>() {
        py_str(s).trim().parse::<u64>().ok()
    } else {
        None
    };
    if parsed.is_none() {
        bad_field(v.py(), class, field, "an int >= 0", v);
    }
    parsed
}

/// An optional non-negative finite number (cost, duration): int, float or numeric string.
pub fn opt_amount(class: &str, field: &str, v: Option<&Bound<'_, PyAny>>) -> Option<f64> {
    let v = v.filter(|v| !v.is_none())?;
    let parsed = number(v).filter(|x| x.is_finite() && *x >= 0.0);
    if parsed.is_none() {
        bad_field(v.py(), class, field, "a finite number >= 0", v);
    }
    parsed
}

fn number(v: &Bound<'_, PyAny>) -> Option<f64> {
    if v.is_instance_of::<PyBool>() {
        None
    } else if let Ok(f) = v.cast::<PyFloat>() {
        Some(f.value())
    } else if v.is_instance_of::<PyInt>() {
        v.extract::<f64>().ok()
    } else if let Ok(s) = v.cast::<PyString>() {
        py_str(s).trim().parse::<f64>().ok()
    } else {
        // Decimal, numpy scalars: anything with __float__.
        v.extract::<f64>().ok()
    }
}

pub fn bad_field(py: Python<'_>, class: &str, field: &str, expected: &str, v: &Bound<'_, PyAny>) {
    warn_once(py, Warn::BadField, || {
        format!(
            "{class}.{field} should be {expected}, got {} {}; the field was dropped",
            type_name(v),
            truncate(&str_of(v), 80)
        )
    });
}

/// The name of a value's type, for messages.
pub fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
