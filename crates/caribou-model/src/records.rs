//! The ingest wire format: `POST /api/v1/ingest` takes one [`Batch`].
//!
//! A batch is a list of records of mixed kinds, tagged by `"kind"`. Every record has:
//! - `id`: a UUID chosen by the sender, stable across retries. Kestrel stores each id once, so
//!   sending the same batch again (after a timeout, from a spool, from another process) changes
//!   nothing.
//! - `trace_id`: the trace (rollout) it belongs to.
//! - `ts`: when it happened, microseconds since the Unix epoch.
//!
//! Records of one trace may arrive in any order and in different batches: an item may come before
//! the opening of its trace. Kestrel keeps it and files the trace when the opening arrives.
//!
//! A trace is made of turns: each `trace_run` block sends a [`TraceOpen`] and a [`TraceClose`]
//! with the same `turn_id`. Opening a trace id that already exists adds a turn (multi-turn
//! sessions).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::JsonMap;
use crate::items::Item;
use crate::status::{Phase, RolloutStatus};

/// The body of `POST /api/v1/ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub records: Vec<Record>,
}

/// One record of a batch, tagged on the wire by `"kind"`. Deserialized without buffering when
/// `"kind"` comes first, as Caribou writes it (see `tagged`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    TraceOpen(TraceOpen),
    Item(ItemRecord),
    Status(StatusRecord),
    Error(ErrorRecord),
    Metadata(MetadataRecord),
    Tags(TagsRecord),
    TraceClose(TraceClose),
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::tagged::deserialize(d)
    }
}

impl crate::tagged::Tagged for Record {
    const TAG: &'static str = "kind";
    const VARIANTS: &'static [&'static str] = &[
        "trace_open",
        "item",
        "status",
        "error",
        "metadata",
        "tags",
        "trace_close",
    ];
    const EXPECTING: &'static str = "a record: an object with a \"kind\"";

    fn variant<'de, D: serde::Deserializer<'de>>(index: usize, d: D) -> Result<Self, D::Error> {
        Ok(match index {
            0 => Record::TraceOpen(TraceOpen::deserialize(d)?),
            1 => Record::Item(ItemRecord::deserialize(d)?),
            2 => Record::Status(StatusRecord::deserialize(d)?),
            3 => Record::Error(ErrorRecord::deserialize(d)?),
            4 => Record::Metadata(MetadataRecord::deserialize(d)?),
            5 => Record::Tags(TagsRecord::deserialize(d)?),
            _ => Record::TraceClose(TraceClose::deserialize(d)?),
        })
    }
}

impl Record {
    /// The record's stable id.
    pub fn id(&self) -> Uuid {
        match self {
            Record::TraceOpen(r) => r.id,
            Record::Item(r) => r.id,
            Record::Status(r) => r.id,
            Record::Error(r) => r.id,
            Record::Metadata(r) => r.id,
            Record::Tags(r) => r.id,
            Record::TraceClose(r) => r.id,
        }
    }

    /// The trace the record belongs to.
    pub fn trace_id(&self) -> &str {
        match self {
            Record::TraceOpen(r) => &r.trace_id,
            Record::Item(r) => &r.trace_id,
            Record::Status(r) => &r.trace_id,
            Record::Error(r) => &r.trace_id,
            Record::Metadata(r) => &r.trace_id,
            Record::Tags(r) => &r.trace_id,
            Record::TraceClose(r) => &r.trace_id,
        }
    }

    /// When it happened, microseconds since the Unix epoch.
    pub fn ts(&self) -> i64 {
        match self {
            Record::TraceOpen(r) => r.ts,
            Record::Item(r) => r.ts,
            Record::Status(r) => r.ts,
            Record::Error(r) => r.ts,
            Record::Metadata(r) => r.ts,
            Record::Tags(r) => r.ts,
            Record::TraceClose(r) => r.ts,
        }
    }

    /// The wire name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::TraceOpen(_) => "trace_open",
            Record::Item(_) => "item",
            Record::Status(_) => "status",
            Record::Error(_) => "error",
            Record::Metadata(_) => "metadata",
            Record::Tags(_) => "tags",
            Record::TraceClose(_) => "trace_close",
        }
    }
}

/// A turn of a trace begins (the first turn creates the trace).
///
/// Where the trace is filed: the run named by `run_id` when Kestrel knows that run; else the
/// project named `project`; else the project named by `run_id` (that is how `phase="prod"` with
/// `run_id=<project name>` works). Such a project is created on first sight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceOpen {
    pub id: Uuid,
    pub trace_id: String,
    pub ts: i64,
    pub turn_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoint_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Extra keys of the `trace_run` meta; merged into the trace's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonMap>,
}

/// A logged item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRecord {
    pub id: Uuid,
    pub trace_id: String,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<Uuid>,
    pub item: Item,
}

/// The trace's status changes. The newest `ts` wins, whatever order records arrive in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRecord {
    pub id: Uuid,
    pub trace_id: String,
    pub ts: i64,
    pub status: RolloutStatus,
}

/// An error message (and traceback) for the trace. The newest `ts` wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRecord {
    pub id: Uuid,
    pub trace_id: String,
    pub ts: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// Keys merged into the trace's metadata (top-level keys replace, others are kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataRecord {
    pub id: Uuid,
    pub trace_id: String,
    pub ts: i64,
    pub metadata: JsonMap,
}

/// Tags added to the trace's tag set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsRecord {
    pub id: Uuid,
    pub trace_id: String,
    pub ts: i64,
    pub tags: Vec<String>,
}

/// A turn ends. `status` is the status the turn ended with (the SDK sends `COMPLETED` for a block
/// that ended normally with no status set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceClose {
    pub id: Uuid,
    pub trace_id: String,
    pub ts: i64,
    pub turn_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RolloutStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_mixed_batch_parses() {
        let batch: Batch = serde_json::from_value(json!({"records": [
            {"kind": "trace_open", "id": "0193a0d8-0000-7000-8000-000000000001", "trace_id": "trc_1",
             "ts": 1, "turn_id": "0193a0d8-0000-7000-8000-0000000000aa", "run_id": "my-project", "phase": "prod"},
            {"kind": "item", "id": "0193a0d8-0000-7000-8000-000000000002", "trace_id": "trc_1", "ts": 2,
             "item": {"type": "tool_execution", "name": "search", "arguments": "{\"q\": 1}"}},
            {"kind": "status", "id": "0193a0d8-0000-7000-8000-000000000003", "trace_id": "trc_1", "ts": 3,
             "status": "COMPLETED"},
            {"kind": "tags", "id": "0193a0d8-0000-7000-8000-000000000004", "trace_id": "trc_1", "ts": 4,
             "tags": ["a", "b"]},
        ]}))
        .unwrap();
        assert_eq!(batch.records.len(), 4);
        assert_eq!(batch.records[1].kind(), "item");
        assert_eq!(batch.records[2].trace_id(), "trc_1");
        let again: Batch = serde_json::from_str(&serde_json::to_string(&batch).unwrap()).unwrap();
        assert_eq!(again, batch);
    }

    #[test]
    fn bad_ids_and_kinds_are_refused() {
        let bad_id = json!({"records": [{"kind": "status", "id": "nope", "trace_id": "t", "ts": 1, "status": "ERROR"}]});
        assert!(serde_json::from_value::<Batch>(bad_id).is_err());
        let bad_kind =
            json!({"records": [{"kind": "span", "id": "0193a0d8-0000-7000-8000-000000000003"}]});
        let err = serde_json::from_value::<Batch>(bad_kind)
            .unwrap_err()
            .to_string();
        assert!(err.contains("span"), "{err}");
    }
}
