//! Conversions between SQL column values and model types.
//!
//! Text columns hold the wire spellings (`COMPLETED`, `train`); JSON columns hold serde_json text;
//! UUIDs are 16-byte blobs. A value that does not convert back means a corrupt file or a bug, so it
//! is a `rusqlite` conversion error (an internal error), never a client one.

use caribou_model::{JsonMap, Phase, RolloutStatus};
use rusqlite::types::Type;
use uuid::Uuid;

fn conversion(
    col: usize,
    ty: Type,
    err: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, ty, err.into())
}

pub(crate) fn phase(col: usize, text: &str) -> rusqlite::Result<Phase> {
    text.parse()
        .map_err(|e: String| conversion(col, Type::Text, e))
}

pub(crate) fn status(col: usize, text: &str) -> rusqlite::Result<RolloutStatus> {
    text.parse()
        .map_err(|e: String| conversion(col, Type::Text, e))
}

pub(crate) fn json_map(col: usize, text: &str) -> rusqlite::Result<JsonMap> {
    serde_json::from_str(text).map_err(|e| conversion(col, Type::Text, e))
}

pub(crate) fn json_value(col: usize, text: &str) -> rusqlite::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| conversion(col, Type::Text, e))
}

pub(crate) fn uuid(col: usize, bytes: &[u8]) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| conversion(col, Type::Blob, e))
}

/// Counters are stored as SQLite integers (i64); they are never negative.
pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A `u64` figure as a SQLite integer, saturating (no real figure comes near).
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `TOTAL()` of counters as a `u64`: saturating, NaN as 0 (Rust's float casts saturate).
pub(crate) fn total_count(v: f64) -> u64 {
    // Saturation is the point: a sum past u64::MAX reads as u64::MAX.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = v as u64;
    n
}
