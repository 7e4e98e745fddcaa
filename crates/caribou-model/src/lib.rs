//! The one data model shared by the Caribou SDK and the Kestrel server.
//!
//! This crate holds plain data and the rules that decide whether data is valid: no IO, no async
//! runtime, no Python. It is the contract between the two sides:
//!
//! - [`items`]: what an agent logs (`Message`, `ToolExecution`, `Event`, `Grade`).
//! - [`records`]: the ingest wire format, a [`records::Batch`] of [`records::Record`]s, each with a
//!   stable id so that a retried batch never stores anything twice.
//! - [`status`]: rollout statuses and phases.
//! - [`api`]: the JSON shapes Kestrel's read API answers with, so that clients and server agree.
//! - [`validate`]: limits (lengths, counts) and the checks both sides run.
//! - [`json`]: compact JSON as `serde_json` writes it, with a faster string escaper.
//!
//! Times are integer **microseconds since the Unix epoch** everywhere (they fit a JavaScript
//! number exactly, unlike nanoseconds).

pub mod api;
pub mod ids;
pub mod items;
pub mod json;
pub mod records;
pub mod status;
mod tagged;
pub mod validate;

pub use ids::{new_record_id, new_trace_id, now_us};
pub use items::{Event, Grade, GradeValue, Item, Message, ToolExecution};
pub use records::{
    Batch, ErrorRecord, ItemRecord, MetadataRecord, Record, StatusRecord, TagsRecord, TraceClose,
    TraceOpen,
};
pub use status::{Phase, RolloutStatus};
pub use validate::{Limits, ValidationError};

/// A JSON object, as used for metadata and configs.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;
