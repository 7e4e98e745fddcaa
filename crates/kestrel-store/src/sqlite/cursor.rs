//! Keyset pagination cursors.
//!
//! A cursor is the sort key of the last row of a page plus that row's integer id (the tiebreak),
//! tagged with the list and order it belongs to, hex-encoded so clients treat it as opaque.
//! A cursor that does not decode, or that belongs to another list or order, is
//! [`StoreError::Invalid`]: clients must pass back `next_cursor` unchanged.

use std::fmt::Write as _;

use crate::{Result, StoreError};

/// The sort key part of a cursor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    Int(i64),
    /// Stored as its bits so that it round-trips exactly.
    Real(f64),
    Text(String),
}

/// A decoded cursor: where the previous page ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub key: Key,
    pub id: i64,
}

const SEP: char = '\u{1f}';

impl Cursor {
    /// Encodes the cursor for the list/order named `tag`.
    pub(crate) fn encode(&self, tag: &str) -> String {
        let key = match &self.key {
            Key::Int(v) => format!("i{v}"),
            Key::Real(v) => format!("r{}", v.to_bits()),
            Key::Text(v) => format!("t{v}"),
        };
        // The key goes last so that a text key may hold anything, the separator included.
        let plain = format!("{tag}{SEP}{}{SEP}{key}", self.id);
        plain
            .bytes()
            .fold(String::with_capacity(plain.len() * 2), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
    }

    /// Decodes a cursor made by [`Cursor::encode`] with the same `tag`.
    pub(crate) fn decode(tag: &str, cursor: &str) -> Result<Cursor> {
        decode_inner(tag, cursor).ok_or_else(|| {
            StoreError::Invalid(format!(
                "cursor {:?} is not valid; pass back next_cursor unchanged",
                truncate(cursor)
            ))
        })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn decode_inner(tag: &str, cursor: &str) -> Option<Cursor> {
    if !cursor.len().is_multiple_of(2) || cursor.len() > 4096 {
        return None;
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let plain = String::from_utf8(bytes).ok()?;
    let mut parts = plain.splitn(3, SEP);
    if parts.next()? != tag {
        return None;
    }
    let id = parts.next()?.parse().ok()?;
    let key = parts.next()?;
    let key = match key.split_at_checked(1)? {
        ("i", v) => Key::Int(v.parse().ok()?),
        ("r", v) => Key::Real(f64::from_bits(v.parse().ok()?)),
        ("t", v) => Key::Text(v.to_owned()),
        _ => return None,
    };
    Some(Cursor { key, id })
}

/// A page size: `None` is 50; 1..=1000 is taken; anything else is [`StoreError::Invalid`].
pub(crate) fn page_limit(limit: Option<u32>) -> Result<usize> {
    match limit {
        None => Ok(50),
        Some(n @ 1..=1000) => Ok(n as usize),
        Some(n) => Err(StoreError::Invalid(format!(
            "limit {n} is out of range; use 1..=1000"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_others() {
        for key in [
            Key::Int(-5),
            Key::Real(0.1 + 0.2),
            Key::Text("a\u{1f}b".into()),
        ] {
            let c = Cursor {
                key: key.clone(),
                id: 42,
            };
            let s = c.encode("traces.newest");
            assert_eq!(Cursor::decode("traces.newest", &s).unwrap(), c);
            assert!(Cursor::decode("traces.oldest", &s).is_err());
        }
        for bad in ["", "zz", "abc", "6869"] {
            let err = Cursor::decode("x", bad).unwrap_err().to_string();
            assert!(err.contains("pass back next_cursor unchanged"), "{err}");
        }
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(1001)).is_err());
        assert_eq!(page_limit(None).unwrap(), 50);
    }
}
