//! What travels from the agent's threads to the exporter thread, and the counters both sides share.
//!
//! A record travels as its wire JSON ([`Queued`]), written on the thread that logs it, in one
//! allocation. Why there and not on the exporter thread: the record's values are in that
//! thread's cache when it logs them, the item itself is then freed by the thread that made it,
//! and only that one allocation crosses threads (with glibc, memory freed on another thread than
//! the one that allocated it takes the allocator's slow, locked path). The exporter only copies
//! records into a batch and compresses it: its CPU per record fell by two thirds, and the queue
//! holds the JSON only, not the items (`bench/README.md`, section 1).
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

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use caribou_model::{Item, Record};
use uuid::Uuid;

use super::record_json::TurnJson;

/// The trace and turn an item belongs to, shared by all items of one `trace_run` turn.
#[derive(Debug)]
pub struct TurnKey {
    pub trace_id: String,
    pub turn_id: Uuid,
    /// Whether `trace_id` passed validation at open time; items of an invalid trace are refused
    /// (one bad record would make Kestrel refuse the whole batch around it).
    pub valid: bool,
    /// Both ids as their records write them.
    json: TurnJson,
}

impl TurnKey {
    pub fn new(trace_id: String, turn_id: Uuid, valid: bool) -> TurnKey {
        let json = TurnJson::new(&trace_id, turn_id);
        TurnKey {
            trace_id,
            turn_id,
            valid,
            json,
        }
    }

    /// Why records of this turn are refused, if they are: its trace id failed validation.
    pub fn check(&self) -> Result<(), caribou_model::ValidationError> {
        if self.valid {
            return Ok(());
        }
        caribou_model::validate::check_name(
            "trace_id",
            &self.trace_id,
            caribou_model::validate::Limits::DEFAULT.max_id_len,
        )
    }
}

/// One queued record: its wire JSON (one element of the batch's `records` array), exactly as
/// `serde_json` writes the model's [`Record`], in an allocation of its exact size.
#[derive(Debug)]
pub struct Queued {
    json: Box<[u8]>,
}

/// What a queued record counts for against the queue's byte bound beyond its JSON: the
/// allocation's and the channel slot's share. Pure, so the exporter subtracts exactly what was
/// added.
const RECORD_OVERHEAD: u64 = 32;

/// Scratch buffers larger than this are not kept for the next record (a rare huge record must not
/// pin its size in every logging thread).
const SCRATCH_KEEP: usize = 64 << 10;

thread_local! {
    /// Where a record is written before it is copied into its exact-size allocation.
    pub(super) static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Queued {
    /// An item record of `turn`.
    pub fn item(id: Uuid, ts: i64, turn: &TurnKey, item: &Item) -> serde_json::Result<Queued> {
        Queued::encode(|buf| super::record_json::write_item(buf, id, ts, &turn.json, item))
    }

    /// An item record of `turn` around the item's JSON `body` (see `record_json::ItemJson`).
    pub fn item_json(id: Uuid, ts: i64, turn: &TurnKey, body: &[u8]) -> serde_json::Result<Queued> {
        Queued::encode(|buf| {
            super::record_json::write_item_json(buf, id, ts, &turn.json, body);
            Ok(())
        })
    }

    /// A `trace_open` written from its parts.
    pub fn open(open: &super::record_json::OpenRecord<'_>) -> serde_json::Result<Queued> {
        Queued::encode(|buf| super::record_json::write_open(buf, open))
    }

    /// The `trace_close` of `turn`.
    pub fn close(
        id: Uuid,
        ts: i64,
        turn: &TurnKey,
        status: Option<caribou_model::RolloutStatus>,
    ) -> serde_json::Result<Queued> {
        Queued::encode(|buf| {
            super::record_json::write_close_of_turn(buf, id, ts, &turn.json, status);
            Ok(())
        })
    }

    /// Any other record.
    pub fn record(record: &Record) -> serde_json::Result<Queued> {
        Queued::encode(|buf| super::record_json::write_record(buf, record))
    }

    /// Runs `write` on this thread's scratch buffer and keeps the result in an allocation of its
    /// exact size.
    fn encode(
        write: impl Fn(&mut Vec<u8>) -> serde_json::Result<()>,
    ) -> serde_json::Result<Queued> {
        let write = |buf: &mut Vec<u8>| {
            buf.clear();
            let out = write(buf).map(|()| Queued {
                json: Box::from(&buf[..]),
            });
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            out
        };
        SCRATCH
            .try_with(|scratch| match scratch.try_borrow_mut() {
                Ok(mut buf) => write(&mut buf),
                // Not reachable (writing a record never logs); a fresh buffer rather than a panic.
                Err(_) => write(&mut Vec::new()),
            })
            // The thread is exiting and its locals are gone.
            .unwrap_or_else(|_| write(&mut Vec::new()))
    }

    /// The record's JSON.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// What the record counts for against the queue's byte bound: its JSON plus
    /// [`RECORD_OVERHEAD`].
    pub fn approx_bytes(&self) -> u64 {
        RECORD_OVERHEAD + self.json.len() as u64
    }
}

/// The exporter's counters: cumulative since this exporter started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes of the records in the queue (see [`Queued::approx_bytes`]): added by the
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
