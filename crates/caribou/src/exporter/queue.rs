//! What travels from the agent's threads to the exporter thread, and the counters both sides share.
//!
//! An item record is queued as built on the agent's thread: its id, its timestamp, a shared
//! pointer to its trace and turn, and the item moved in. Turning it into JSON happens on the
//! exporter thread. The rarer records (trace open/close, status, error, metadata, tags) travel as
//! ready model [`Record`]s.
//!
//! Counters only grow. `enqueued` counts records accepted by the queue; every one of them ends as
//! exactly one of `sent` (acknowledged by Kestrel), `spooled` (durably written to the spool),
//! `rejected` (refused with a 4xx) or `abandoned` (retries exhausted with no spool, or still unsent
//! when the exporter stopped). So `sent + spooled + rejected + abandoned` catching up with a value
//! of `enqueued` means every record queued before that moment is settled, which is what `flush`
//! waits for. Records refused at the door (`full`, `invalid`, `closed`) were never enqueued.
//!
//! The spool has counters of its own, which may include other processes' records (a spool is
//! shared): `spool_sent` (delivered from the spool by this exporter) and `spool_dropped` (deleted
//! from it: evicted by its size bound, damaged, or refused by Kestrel on replay).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use caribou_model::{Item, JsonMap, Record};
use serde_json::Value;
use uuid::Uuid;

/// The trace and turn an item belongs to, shared by all items of one `trace_run` turn.
#[derive(Debug)]
pub struct TurnKey {
    pub trace_id: String,
    pub turn_id: Uuid,
    /// Whether `trace_id` passed validation at open time; items of an invalid trace are refused
    /// (one bad record would make Kestrel refuse the whole batch around it).
    pub valid: bool,
}

/// One queued record. Travels boxed (`Box<Queued>`), one allocation whichever the variant, so
/// the variants' sizes differing costs nothing more.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Queued {
    Item {
        id: Uuid,
        ts: i64,
        turn: Arc<TurnKey>,
        /// Shared with the caller when it keeps the item (a Python item object).
        item: Arc<Item>,
    },
    Record(Record),
}

/// Estimated bytes of a record, for the queue's byte bound: its text plus a fixed overhead. Only
/// a bound's unit, not an exact size; pure, so the exporter subtracts exactly what was added.
const RECORD_OVERHEAD: u64 = 160;

impl Queued {
    /// The record's estimated size (see [`RECORD_OVERHEAD`]).
    pub fn approx_bytes(&self) -> u64 {
        RECORD_OVERHEAD
            + match self {
                Queued::Item { item, .. } => item_bytes(item),
                Queued::Record(Record::Metadata(m)) => map_bytes(&m.metadata),
                Queued::Record(Record::TraceOpen(o)) => o.metadata.as_ref().map_or(0, map_bytes),
                Queued::Record(Record::Error(e)) => {
                    len(&e.message) + e.traceback.as_deref().map_or(0, len)
                }
                Queued::Record(Record::Tags(t)) => t.tags.iter().map(|t| len(t) + 8).sum(),
                Queued::Record(_) => 0,
            }
    }
}

fn len(s: &str) -> u64 {
    s.len() as u64
}

fn opt(s: &Option<String>) -> u64 {
    s.as_deref().map_or(0, len)
}

fn opt_value(v: &Option<Value>) -> u64 {
    v.as_ref().map_or(0, value_bytes)
}

fn item_bytes(item: &Item) -> u64 {
    match item {
        Item::Message(m) => {
            len(&m.role)
                + opt_value(&m.content)
                + opt_value(&m.tool_calls)
                + opt(&m.tool_call_id)
                + opt(&m.name)
                + opt(&m.model)
                + opt(&m.provider)
                + m.metadata.as_ref().map_or(0, map_bytes)
        }
        Item::ToolExecution(t) => {
            len(&t.name)
                + opt(&t.call_id)
                + opt_value(&t.arguments)
                + opt_value(&t.result)
                + opt(&t.requestor)
                + opt(&t.error)
        }
        Item::Event(e) => len(&e.name) + opt_value(&e.data) + len(&e.level),
        Item::Grade(g) => {
            len(&g.name)
                + opt(&g.comment)
                + opt(&g.grader)
                + g.metadata.as_ref().map_or(0, map_bytes)
        }
    }
}

fn map_bytes(map: &JsonMap) -> u64 {
    map.iter().map(|(k, v)| len(k) + 8 + value_bytes(v)).sum()
}

fn value_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => len(s) + 8,
        Value::Array(a) => a.iter().map(value_bytes).sum::<u64>() + 8,
        Value::Object(m) => map_bytes(m) + 8,
        _ => 8,
    }
}

/// The exporter's counters: cumulative since this exporter started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Estimated bytes of the records in the queue (see [`Queued::approx_bytes`]): added by the
    /// agent's thread before it queues a record, taken off by the exporter's when it takes it.
    pub queued_bytes: AtomicU64,
    pub enqueued: AtomicU64,
    pub sent: AtomicU64,
    pub spooled: AtomicU64,
    pub spool_sent: AtomicU64,
    pub spool_dropped: AtomicU64,
    pub rejected: AtomicU64,
    pub abandoned: AtomicU64,
    pub full: AtomicU64,
    pub invalid: AtomicU64,
    pub closed: AtomicU64,
    pub failed_batches: AtomicU64,
    pub warned_full: AtomicBool,
    pub warned_invalid: AtomicBool,
    pub warned_rejected: AtomicBool,
    pub warned_abandoned: AtomicBool,
    pub warned_unreachable: AtomicBool,
    pub warned_spooling: AtomicBool,
    pub warned_spool_dropped: AtomicBool,
    pub warned_spool_failed: AtomicBool,
}

impl Counters {
    /// Enqueued records that reached an end (sent, spooled, rejected or abandoned).
    pub fn settled(&self) -> u64 {
        // `sent` last: a reader that sees a settled count never sees it shrink later.
        self.rejected.load(Ordering::Acquire)
            + self.abandoned.load(Ordering::Acquire)
            + self.spooled.load(Ordering::Acquire)
            + self.sent.load(Ordering::Acquire)
    }

    /// Every record dropped, for whatever reason.
    pub fn dropped(&self) -> u64 {
        self.rejected.load(Ordering::Acquire)
            + self.abandoned.load(Ordering::Acquire)
            + self.full.load(Ordering::Relaxed)
            + self.invalid.load(Ordering::Relaxed)
            + self.closed.load(Ordering::Relaxed)
            + self.spool_dropped.load(Ordering::Acquire)
    }

    /// Enqueued records not settled yet.
    pub fn pending(&self) -> u64 {
        let enqueued = self.enqueued.load(Ordering::Acquire);
        enqueued.saturating_sub(self.settled())
    }

    /// A snapshot for callers.
    pub fn stats(&self) -> Stats {
        Stats {
            enqueued: self.enqueued.load(Ordering::Acquire),
            sent: self.sent.load(Ordering::Acquire),
            dropped: self.dropped(),
            pending: self.pending(),
            failed_batches: self.failed_batches.load(Ordering::Acquire),
            dropped_queue_full: self.full.load(Ordering::Relaxed),
            dropped_invalid: self.invalid.load(Ordering::Relaxed),
            dropped_rejected: self.rejected.load(Ordering::Acquire),
            dropped_unsent: self.abandoned.load(Ordering::Acquire)
                + self.closed.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Acquire),
            spool_sent: self.spool_sent.load(Ordering::Acquire),
            dropped_spool: self.spool_dropped.load(Ordering::Acquire),
        }
    }

    pub fn report(&self, timed_out: bool) -> FlushReport {
        FlushReport {
            sent: self.sent.load(Ordering::Acquire),
            spooled: self.spooled.load(Ordering::Acquire),
            dropped: self.dropped(),
            pending: self.pending(),
            timed_out,
        }
    }

    /// Sets a warn-once flag; true the first time only.
    pub fn first(flag: &AtomicBool) -> bool {
        !flag.load(Ordering::Relaxed) && !flag.swap(true, Ordering::Relaxed)
    }
}

/// What `flush` and `shutdown` report. Counts are cumulative since the exporter started (the
/// last `configure`, or the first log after a fork): `sent` acknowledged by Kestrel, `spooled`
/// durably written to the on-disk spool (delivered later, by this process or the next one with
/// the same spool), `dropped` for any reason (queue full, invalid, refused by Kestrel, retries
/// exhausted with no spool, unsent at shutdown, deleted from the spool), `pending` queued or in
/// flight when the call returned: neither acknowledged nor on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub sent: u64,
    pub spooled: u64,
    pub dropped: u64,
    pub pending: u64,
    /// The call's timeout passed before every record logged before the call was settled.
    pub timed_out: bool,
}

/// Cumulative counters of the current exporter (since the last `configure`).
///
/// `dropped` = `dropped_queue_full + dropped_invalid + dropped_rejected + dropped_unsent +
/// dropped_spool`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records accepted by the queue.
    pub enqueued: u64,
    /// Records acknowledged by Kestrel.
    pub sent: u64,
    /// Records dropped for any reason.
    pub dropped: u64,
    /// Records queued or in flight.
    pub pending: u64,
    /// Batches given up (refused with a 4xx, or retries exhausted).
    pub failed_batches: u64,
    /// Refused at log time: the queue was full.
    pub dropped_queue_full: u64,
    /// Refused at log time: the record failed validation.
    pub dropped_invalid: u64,
    /// Refused by Kestrel with a 4xx (not 429).
    pub dropped_rejected: u64,
    /// Retries exhausted, still unsent when the exporter stopped, or logged after it stopped.
    pub dropped_unsent: u64,
    /// Records of this exporter durably written to the spool.
    pub spooled: u64,
    /// Records delivered from the spool by this exporter (its own, or other processes').
    pub spool_sent: u64,
    /// Records deleted from the spool by this exporter: evicted by the size bound, damaged, or
    /// refused by Kestrel on replay (possibly other processes' records).
    pub dropped_spool: u64,
}
