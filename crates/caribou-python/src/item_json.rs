//! Python values written straight to JSON, by [`convert::to_json`](crate::convert::to_json)'s
//! rules, for the items' JSON written when they are built (`items`).
//!
//! The common shapes (`str`, `None`, `dict` with `str` keys, `list`, `tuple`, `bool`, `int`,
//! `float`) are written as they are read: a string is escaped from the interpreter's own UTF-8
//! (no copy into a Rust `String`), a dict needs no map. Everything else (pydantic models,
//! dataclasses, bytes, sets, dicts with keys that are not `str`, integers beyond 64 bits, values
//! nested deeper than [`MAX_DEPTH`]) goes through `convert` at the same depth and is written
//! from its `serde_json::Value`, so the rules live in one place. Invariant: the bytes written are
//! those of `caribou_model::json` for `convert`'s value.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use caribou_model::json::{self, write_str};

use crate::convert::{MAX_DEPTH, convert, text, to_json_map};

/// Writes `obj` as JSON (see the module docs).
pub fn write_value(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) {
    write(out, obj, 0);
}

/// Writes a mapping (metadata) as a JSON object; false, writing nothing, when `obj` is not one
/// (`convert::to_json_map`'s rules).
pub fn write_map(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> bool {
    if let Ok(d) = obj.cast::<PyDict>()
        && write_dict(out, d, 0)
    {
        return true;
    }
    match to_json_map(obj) {
        Some(map) => json::write(out, &map).is_ok(),
        None => false,
    }
}

fn write(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>, depth: u32) {
    // `convert`'s order of checks, so that the same value takes the same branch.
    if let Ok(s) = obj.cast::<PyString>() {
        write_str(out, &text(s));
        return;
    }
    if obj.is_none() {
        out.extend_from_slice(b"null");
        return;
    }
    if depth < MAX_DEPTH {
        if let Ok(d) = obj.cast::<PyDict>() {
            if write_dict(out, d, depth) {
                return;
            }
        } else if let Ok(l) = obj.cast::<PyList>() {
            write_seq(out, l.iter(), depth);
            return;
        } else if let Ok(b) = obj.cast::<PyBool>() {
            out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
            return;
        } else if obj.is_instance_of::<PyInt>() {
            if let Ok(i) = obj.extract::<i64>() {
                out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                return;
            }
            if let Ok(u) = obj.extract::<u64>() {
                out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
                return;
            }
        } else if let Ok(f) = obj.cast::<PyFloat>() {
            if f.value().is_finite() && json::write(out, &f.value()).is_ok() {
                return;
            }
        } else if let Ok(t) = obj.cast::<PyTuple>() {
            write_seq(out, t.iter(), depth);
            return;
        }
    }
    // Whatever `convert` makes of it (its rare cases, and the cut at MAX_DEPTH).
    if json::write(out, &convert(obj, depth)).is_err() {
        // Only a float JSON cannot hold could fail, and `convert` turns those into text.
        out.extend_from_slice(b"null");
    }
}

fn write_seq<'py>(out: &mut Vec<u8>, items: impl Iterator<Item = Bound<'py, PyAny>>, depth: u32) {
    out.push(b'[');
    for (k, v) in items.enumerate() {
        if k > 0 {
            out.push(b',');
        }
        write(out, &v, depth + 1);
    }
    out.push(b']');
}

/// A dict whose keys are all `str`; false, with `out` as it was, at the first other key (`str()`
/// of keys may collide, which `convert`'s map resolves: the whole dict goes through it).
fn write_dict(out: &mut Vec<u8>, d: &Bound<'_, PyDict>, depth: u32) -> bool {
    let start = out.len();
    out.push(b'{');
    for (k, (key, value)) in d.iter().enumerate() {
        let Ok(key) = key.cast::<PyString>() else {
            out.truncate(start);
            return false;
        };
        if k > 0 {
            out.push(b',');
        }
        write_str(out, &text(key));
        out.push(b':');
        write(out, &value, depth + 1);
    }
    out.push(b'}');
    true
}
