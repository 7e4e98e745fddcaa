//! Identifiers and clocks.
//!
//! Record ids are UUIDv7: time-ordered, so the store's unique index grows at its end (random ids cost
//! ~5x on insert, see PERF-NOTES). Trace ids are strings chosen by the client (`trc_<session>`) or made
//! here (`trc_<uuidv7 hex>`).

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// A new time-ordered record id.
///
/// Ids made by one process are strictly increasing (the `uuid` crate keeps a counter within a
/// millisecond), which also gives a stable order to items logged within the same microsecond.
pub fn new_record_id() -> Uuid {
    Uuid::now_v7()
}

/// A new trace id, `trc_` followed by 32 hex digits of a UUIDv7.
pub fn new_trace_id() -> String {
    format!("trc_{}", Uuid::now_v7().simple())
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
