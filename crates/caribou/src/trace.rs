//! One turn of a trace: [`TraceHandle`] opens it, logs into it and closes it.
//!
//! Every call builds a record on the calling thread (a fresh UUIDv7 id and the current time,
//! made once: retries resend the same id) and queues it; nothing here blocks, fails or panics.
//! With no endpoint configured, or after `shutdown`, every call is a no-op.
//!
//! Records are validated before they are queued (`caribou_model::validate`, the same rules Kestrel
//! applies); an invalid one is dropped, counted and warned once, so it never makes Kestrel refuse
//! the batch it would have travelled in. An item whose trace id is invalid is dropped likewise.
//!
//! Where a trace is filed: `run_id` and `project` come from the options, else from the config.
//! With neither, the trace goes to the project `default` (Kestrel needs one of them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use caribou_model::validate::{
    Limits, OpenFields, check_item, check_name, check_open_fields, check_ts,
};
use caribou_model::{
    ErrorRecord, Item, JsonMap, MetadataRecord, Phase, Record, RolloutStatus, StatusRecord,
    TagsRecord, ValidationError,
};

use crate::exporter::{Exporter, OpenRecord, TurnKey};
use crate::global::{enqueue_record, with_config_and_exporter, with_exporter};
use crate::ids::{new_id_and_ts, new_ids, trace_id_of};

/// Project of traces that name neither a run nor a project.
pub const DEFAULT_PROJECT: &str = "default";

/// How to open a turn. Unset fields come from the config.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    /// `None`: a new `trc_<uuidv7>`. An existing id adds a turn to that trace (multi-turn).
    pub trace_id: Option<String>,
    pub datapoint_id: Option<String>,
    pub phase: Option<Phase>,
    pub model_name: Option<String>,
    pub run_id: Option<String>,
    pub step: Option<i64>,
    pub project: Option<String>,
    /// Merged into the trace's metadata.
    pub metadata: JsonMap,
}

/// An open turn of a trace. Cheap to clone (one `Arc`); `Send + Sync`.
#[derive(Debug, Clone)]
pub struct TraceHandle {
    inner: Arc<TraceInner>,
}

#[derive(Debug)]
struct TraceInner {
    key: TurnKey,
    /// The last `set_status`, encoded by [`encode`]; 0 when none.
    last_status: AtomicU8,
    closed: AtomicBool,
}

impl TraceHandle {
    /// Opens a turn and queues its `trace_open`. Never fails, never blocks.
    ///
    /// The record is written from the options and the config in place (no `Record` is built:
    /// this runs once per `trace_run`, and building it cost a copy of the trace id and project and
    /// a validation pass over fields that are checked here already).
    pub fn open(opts: TraceOptions) -> TraceHandle {
        let ([id, turn_id, fresh], ts) = new_ids();
        let generated = opts.trace_id.is_none();
        let trace_id = opts.trace_id.unwrap_or_else(|| trace_id_of(fresh));
        // A generated id is valid by construction.
        let valid =
            generated || check_name("trace_id", &trace_id, Limits::DEFAULT.max_id_len).is_ok();
        let key = TurnKey::new(trace_id, turn_id, valid);
        with_config_and_exporter(|config, exporter| {
            let run_id = opts.run_id.as_deref().or(config.run_id.as_deref());
            let mut project = opts.project.as_deref().or(config.project.as_deref());
            if run_id.is_none() && project.is_none() {
                project = Some(DEFAULT_PROJECT);
            }
            let open = OpenRecord {
                id,
                trace_id: &key.trace_id,
                ts,
                turn_id,
                project,
                run_id,
                phase: Some(opts.phase.unwrap_or(config.phase)),
                step: opts.step.or(config.step),
                datapoint_id: opts.datapoint_id.as_deref(),
                model_name: opts.model_name.as_deref(),
                metadata: (!opts.metadata.is_empty()).then_some(&opts.metadata),
            };
            // The rules `check_record` applies to a `trace_open`.
            let fields = OpenFields {
                project,
                run_id,
                datapoint_id: open.datapoint_id,
                model_name: open.model_name,
                step: open.step,
                metadata: open.metadata,
            };
            match key
                .check()
                .and_then(|()| check_ts("ts", ts))
                .and_then(|()| check_open_fields(fields, &Limits::DEFAULT))
            {
                Ok(()) => exporter.enqueue_open(&open),
                Err(e) => exporter.count_invalid(&e),
            }
        });
        TraceHandle {
            inner: Arc::new(TraceInner {
                key,
                last_status: AtomicU8::new(0),
                closed: AtomicBool::new(false),
            }),
        }
    }

    pub fn trace_id(&self) -> &str {
        &self.inner.key.trace_id
    }

    /// The id of this turn (one `trace_run` block).
    pub fn turn_id(&self) -> uuid::Uuid {
        self.inner.key.turn_id
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Queues an item. The hot path: an id, a timestamp, the record's JSON in one allocation, one
    /// `try_send`.
    pub fn log(&self, item: Item) {
        // The error is counted and warned about by the exporter; Rust callers need no more.
        let _ = self.try_log(item);
    }

    /// [`TraceHandle::log`], also returning why an item was refused by validation (dropped and
    /// counted all the same), so a binding can tell its user without validating a second time.
    /// `Ok` when logging is off.
    pub fn try_log(&self, item: Item) -> Result<(), ValidationError> {
        self.try_log_ref(&item)
    }

    /// [`TraceHandle::try_log`] for an item its caller keeps (the Python binding's item objects):
    /// the queued record is its JSON, so the item itself stays with the caller and is freed on the
    /// caller's thread.
    pub fn try_log_ref(&self, item: &Item) -> Result<(), ValidationError> {
        self.log_checked(
            || check_item(item, &Limits::DEFAULT),
            |exporter, id, ts, key| exporter.enqueue_item(id, ts, key, item),
        )
    }

    /// [`TraceHandle::try_log_ref`] for an item its caller already wrote as JSON (`body`, as
    /// `exporter::record_json::ItemJson` writes it) and checked with `validate::check_item`'s
    /// rules (`checked`: the outcome, kept with the item). The Python binding writes each item's
    /// JSON once, when the item is built, straight from the Python values: logging it then only
    /// copies that JSON into its record.
    pub fn try_log_json(
        &self,
        body: &[u8],
        checked: Result<(), &ValidationError>,
    ) -> Result<(), ValidationError> {
        self.log_checked(
            || checked.map_err(Clone::clone),
            |exporter, id, ts, key| exporter.enqueue_item_json(id, ts, key, body),
        )
    }

    /// Checks the turn, a new record's time and the item (`check_item`), then queues the item's
    /// record with `enqueue`; a failed check is counted as a drop and returned.
    fn log_checked(
        &self,
        check_item: impl FnOnce() -> Result<(), ValidationError>,
        enqueue: impl FnOnce(&Exporter, uuid::Uuid, i64, &TurnKey),
    ) -> Result<(), ValidationError> {
        let key = &self.inner.key;
        let mut outcome = Ok(());
        with_exporter(|exporter| {
            let (id, ts) = new_id_and_ts();
            let checked = key
                .check()
                .and_then(|()| check_ts("ts", ts))
                .and_then(|()| check_item());
            match checked {
                Ok(()) => enqueue(exporter, id, ts, key),
                Err(e) => {
                    exporter.count_invalid(&e);
                    outcome = Err(e);
                }
            }
        });
        outcome
    }

    /// Sets the trace's status (the newest wins); also the status `close` uses by default.
    pub fn set_status(&self, status: RolloutStatus) {
        self.inner
            .last_status
            .store(encode(status), Ordering::Release);
        let (id, ts) = new_id_and_ts();
        self.enqueue(Record::Status(StatusRecord {
            id,
            trace_id: self.trace_id().to_owned(),
            ts,
            status,
        }));
    }

    /// Records an error message (and traceback) on the trace. Does not change the status.
    pub fn set_error(&self, message: String, traceback: Option<String>) {
        let (id, ts) = new_id_and_ts();
        self.enqueue(Record::Error(ErrorRecord {
            id,
            trace_id: self.trace_id().to_owned(),
            ts,
            message,
            traceback,
        }));
    }

    /// Merges keys into the trace's metadata (top-level keys replace).
    pub fn add_meta(&self, metadata: JsonMap) {
        if metadata.is_empty() {
            return;
        }
        let (id, ts) = new_id_and_ts();
        self.enqueue(Record::Metadata(MetadataRecord {
            id,
            trace_id: self.trace_id().to_owned(),
            ts,
            metadata,
        }));
    }

    /// Adds tags to the trace's tag set (sent in chunks that fit Kestrel's per-record limit).
    pub fn add_tags(&self, tags: Vec<String>) {
        let chunk = Limits::DEFAULT.max_tags_per_record;
        let mut tags = tags;
        while !tags.is_empty() {
            let rest = tags.split_off(tags.len().min(chunk));
            let (id, ts) = new_id_and_ts();
            self.enqueue(Record::Tags(TagsRecord {
                id,
                trace_id: self.trace_id().to_owned(),
                ts,
                tags,
            }));
            tags = rest;
        }
    }

    /// Ends the turn with `status`, else the last `set_status`, else `COMPLETED`. Idempotent: only
    /// the first call sends anything.
    pub fn close(&self, status: Option<RolloutStatus>) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let status = status
            .or_else(|| decode(self.inner.last_status.load(Ordering::Acquire)))
            .unwrap_or(RolloutStatus::Completed);
        let key = &self.inner.key;
        with_exporter(|exporter| {
            let (id, ts) = new_id_and_ts();
            match key.check() {
                Ok(()) => exporter.enqueue_close(id, ts, key, Some(status)),
                Err(e) => exporter.count_invalid(&e),
            }
        });
    }

    /// The status `close(None)` would use now.
    pub fn pending_status(&self) -> RolloutStatus {
        decode(self.inner.last_status.load(Ordering::Acquire)).unwrap_or(RolloutStatus::Completed)
    }

    fn enqueue(&self, record: Record) {
        // `check_record` (in `enqueue_record`) also refuses a bad trace id.
        enqueue_record(record);
    }
}

fn encode(status: RolloutStatus) -> u8 {
    RolloutStatus::ALL
        .iter()
        .position(|s| *s == status)
        .map_or(0, |i| u8::try_from(i + 1).unwrap_or(0))
}

fn decode(code: u8) -> Option<RolloutStatus> {
    usize::from(code)
        .checked_sub(1)
        .and_then(|i| RolloutStatus::ALL.get(i))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_encode_and_decode() {
        assert_eq!(decode(0), None);
        for status in RolloutStatus::ALL {
            assert_eq!(decode(encode(status)), Some(status));
        }
    }

    #[test]
    fn a_disabled_sdk_still_hands_out_ids() {
        // No global configure in this test: whatever the global state, handles work and never panic.
        let handle = TraceHandle::open(TraceOptions {
            trace_id: Some("trc_given".into()),
            ..Default::default()
        });
        assert_eq!(handle.trace_id(), "trc_given");
        handle.log(Item::Message(caribou_model::Message {
            role: "user".into(),
            ..Default::default()
        }));
        assert_eq!(handle.pending_status(), RolloutStatus::Completed);
        handle.set_status(RolloutStatus::Truncated);
        assert_eq!(handle.pending_status(), RolloutStatus::Truncated);
        assert!(!handle.is_closed());
        handle.close(None);
        handle.close(Some(RolloutStatus::Error));
        assert!(handle.is_closed());
        let fresh = TraceHandle::open(TraceOptions::default());
        assert!(fresh.trace_id().starts_with("trc_"));
        assert_ne!(fresh.turn_id(), handle.turn_id());
    }
}
