//! The exporter: a bounded queue in front of one named OS thread that batches records for Kestrel,
//! a second thread that posts them, and an on-disk spool for what Kestrel does not take.
//!
//! The agent's threads only build a record, write its JSON ([`Queued`]) and `try_send` it on a
//! bounded crossbeam channel; the `caribou-exporter` thread does everything else (batches, zstd,
//! spool, retries) and hands each sealed batch to the `caribou-sender` thread for the HTTP
//! request, so a hung Kestrel never stops the queue from draining. No async runtime runs inside
//! the host process.
//!
//! With the spool on (the default, [`spool`]), a batch Kestrel does not take (down, hung, 5xx) is
//! written to disk after a short retry budget and delivered when Kestrel is back, by this process
//! or the next one using the same spool folder and endpoint; `flush` returns once every record
//! logged before it is acknowledged *or* durably on disk, and reports both (`sent`, `spooled`).
//! See [`worker`].
//!
//! Drop behaviour (never blocks, never fails, never panics into the agent):
//! - queue full (`queue_capacity` records or `queue_max_bytes` of them): the record is dropped
//!   and counted; the first drop is warned once
//!   (`tracing::warn!`), later ones only counted; the total is reported when the exporter stops.
//!   Each first warning below, and that total, is also kept for the bindings (`notice`: Python
//!   writes them to its `caribou` logger);
//! - invalid record (fails `caribou_model::validate`): dropped at the door, counted, warned once
//!   with the reason;
//! - Kestrel refuses a batch with a 4xx other than 429: the batch is dropped and counted, warned
//!   once with Kestrel's message;
//! - transport errors, timeouts, 5xx and 429 are retried with backoff; with the spool on, the batch
//!   then goes to the spool; with it off, after `max_retries` retries the batch is dropped and
//!   counted;
//! - the spool is full: its oldest batches are deleted and counted (warned once); a spool that
//!   cannot be written (disk full, no permission) is turned off for the exporter (warned once);
//! - records still unsent when `shutdown`'s timeout passes are spooled, or without a spool dropped
//!   and counted.
//!
//! Every record keeps the UUIDv7 id it got at log time, so resending a batch (after a timeout
//! whose request did commit, or from a forked child that inherited the parent's queue) never
//! stores anything twice: Kestrel dedups by id.
//!
//! Control: `flush` and `shutdown` are request/reply over a control channel separate from the
//! data channel, each bounded by its timeout. `flush` returns when every record enqueued before
//! the call is settled (acknowledged, spooled or dropped), or when its timeout passes (shortly
//! before it, whatever is still held is spooled); records logged by
//! other threads meanwhile are not waited for. `shutdown` is `flush` plus stopping the thread; it
//! is idempotent and also runs (with [`DROP_TIMEOUT`]) when the exporter is dropped.

mod batch;
mod queue;
pub mod record_json;
mod sender;
pub mod spool;
mod transport;
mod worker;

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError, bounded};

pub(crate) use queue::TurnKey;
pub use queue::{FlushReport, Stats};
pub(crate) use record_json::OpenRecord;
pub(crate) use transport::{agent, bearer, error_message};

use crate::config::Config;
use queue::{Counters, Queued};
use worker::{Control, WorkerParts};

/// Timeout of the shutdown run by `Drop`.
pub const DROP_TIMEOUT: Duration = Duration::from_secs(5);

/// Most time `flush` and `shutdown` keep, before their deadline, for spooling what is still held
/// (and, for `shutdown`, for the thread to answer after it stops trying).
const SPILL_MARGIN: Duration = Duration::from_millis(500);

/// Control messages waiting at most; `flush`/`shutdown` callers beyond it wait their turn.
const CONTROL_CAPACITY: usize = 64;

/// A running exporter: the sending side of its queue, and its thread.
#[derive(Debug)]
pub(crate) struct Exporter {
    data: Sender<Queued>,
    control: Sender<Control>,
    counters: Arc<Counters>,
    queue_capacity: usize,
    queue_max_bytes: u64,
    /// Records per wake-up nudge: a full batch.
    nudge_every: u64,
    thread: Mutex<Option<JoinHandle<()>>>,
    final_report: OnceLock<FlushReport>,
}

impl Exporter {
    /// Starts the thread. Fails only if the config has no endpoint or the OS refuses a thread.
    pub fn start(config: &Config) -> io::Result<Exporter> {
        let endpoint = config.endpoint.as_deref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "no Kestrel endpoint configured",
            )
        })?;
        let (data_tx, data_rx) = bounded(config.queue_capacity.max(1));
        let (control_tx, control_rx) = bounded(CONTROL_CAPACITY);
        let counters = Arc::new(Counters::default());
        let transport = transport::Transport::new(config, endpoint);
        let url = transport.url().to_owned();
        let parts = WorkerParts {
            data: data_rx,
            control: control_rx,
            counters: counters.clone(),
            sender: sender::SenderLink::start(transport)?,
            url,
            spool: open_spool(config, endpoint),
            max_batch_records: config.max_batch_records,
            flush_interval: config.flush_interval,
            max_retries: config.max_retries,
            high_water: (config.queue_capacity / 2).max(1),
        };
        let thread = std::thread::Builder::new()
            .name("caribou-exporter".to_owned())
            .spawn(move || worker::run(parts))?;
        Ok(Exporter {
            data: data_tx,
            control: control_tx,
            counters,
            queue_capacity: config.queue_capacity,
            queue_max_bytes: config.queue_max_bytes,
            nudge_every: u64::try_from(config.max_batch_records.max(1)).unwrap_or(u64::MAX),
            thread: Mutex::new(Some(thread)),
            final_report: OnceLock::new(),
        })
    }

    /// Writes an item record of `turn` and queues it (see [`Exporter::enqueue`]).
    pub fn enqueue_item(
        &self,
        id: uuid::Uuid,
        ts: i64,
        turn: &TurnKey,
        item: &caribou_model::Item,
    ) {
        self.enqueue_written(Queued::item(id, ts, turn, item));
    }

    /// Writes an item record of `turn` around the item's JSON `body` and queues it.
    pub fn enqueue_item_json(&self, id: uuid::Uuid, ts: i64, turn: &TurnKey, body: &[u8]) {
        self.enqueue_written(Queued::item_json(id, ts, turn, body));
    }

    /// Writes a `trace_open` from its parts and queues it (see [`Exporter::enqueue`]).
    pub fn enqueue_open(&self, open: &record_json::OpenRecord<'_>) {
        self.enqueue_written(Queued::open(open));
    }

    /// Writes the `trace_close` of `turn` and queues it (see [`Exporter::enqueue`]).
    pub fn enqueue_close(
        &self,
        id: uuid::Uuid,
        ts: i64,
        turn: &TurnKey,
        status: Option<caribou_model::RolloutStatus>,
    ) {
        self.enqueue_written(Queued::close(id, ts, turn, status));
    }

    /// Writes any other record and queues it (see [`Exporter::enqueue`]).
    pub fn enqueue_record(&self, record: &caribou_model::Record) {
        self.enqueue_written(Queued::record(record));
    }

    fn enqueue_written(&self, written: serde_json::Result<Queued>) {
        match written {
            Ok(queued) => self.enqueue(queued),
            Err(e) => self.count_invalid(&e),
        }
    }

    /// Queues a record; never blocks. A full queue (too many records, or too many bytes) drops
    /// it (counted, warned once).
    #[inline]
    fn enqueue(&self, record: Queued) {
        let bytes = record.approx_bytes();
        // Added before the send, so the exporter's subtraction (after it receives) never comes
        // first; taken back if the send fails.
        let before = self
            .counters
            .queued_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.queue_max_bytes {
            self.counters
                .queued_bytes
                .fetch_sub(bytes, Ordering::Relaxed);
            self.count_full();
            return;
        }
        match self.data.try_send(record) {
            Ok(()) => {
                let n = self.counters.enqueued.fetch_add(1, Ordering::AcqRel) + 1;
                if n.is_multiple_of(self.nudge_every) {
                    // A full batch is waiting: wake the thread now rather than at the interval.
                    // If the control queue is full, the thread is awake anyway.
                    let _ = self.control.try_send(Control::Wake);
                }
            }
            Err(e) => {
                self.counters
                    .queued_bytes
                    .fetch_sub(bytes, Ordering::Relaxed);
                match e {
                    TrySendError::Full(_) => self.count_full(),
                    TrySendError::Disconnected(_) => {
                        self.counters.closed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn count_full(&self) {
        self.counters.full.fetch_add(1, Ordering::Relaxed);
        if Counters::first(&self.counters.warned_full) {
            tracing::warn!(
                capacity = self.queue_capacity,
                max_bytes = self.queue_max_bytes,
                "caribou: exporter queue full; dropping records (counted, total reported at shutdown)"
            );
            crate::notice::keep(format!(
                "caribou: exporter queue full ({} records or {} bytes); dropping records (counted \
                 in caribou.stats(), total reported at shutdown)",
                self.queue_capacity, self.queue_max_bytes
            ));
        }
    }

    /// Counts a record refused by validation, or one that could not be written as JSON (not
    /// reachable with the model's types, whose maps have string keys; counted rather than
    /// trusted). Warned once, with the reason.
    pub fn count_invalid(&self, error: &dyn std::fmt::Display) {
        self.counters.invalid.fetch_add(1, Ordering::Relaxed);
        if Counters::first(&self.counters.warned_invalid) {
            tracing::warn!(error = %error, "caribou: dropping an invalid record (further ones are counted, not logged)");
            crate::notice::keep(format!(
                "caribou: dropping an invalid record: {error} (further ones are counted, not logged)"
            ));
        }
    }

    pub fn stats(&self) -> Stats {
        self.counters.stats()
    }

    /// Waits until every record enqueued before the call is settled, or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> FlushReport {
        let now = Instant::now();
        let deadline = now + timeout;
        let spill_at = deadline - margin(timeout);
        let target = self.counters.enqueued.load(Ordering::Acquire);
        if self.counters.settled() < target && self.final_report.get().is_none() {
            let (reply, answer) = bounded(1);
            if self
                .control
                .send_deadline(
                    Control::Flush {
                        target,
                        spill_at,
                        reply,
                    },
                    deadline,
                )
                .is_ok()
            {
                // Answered when done, or when the thread stops; either way the counters say.
                let _ = answer.recv_deadline(deadline);
            }
        }
        self.counters.report(self.counters.settled() < target)
    }

    /// Sends what it can within `timeout`, drops the rest (counted) and stops the thread.
    /// Idempotent: later calls return the first call's report.
    pub fn shutdown(&self, timeout: Duration) -> FlushReport {
        if let Some(report) = self.final_report.get() {
            return *report;
        }
        let now = Instant::now();
        let deadline = now + timeout;
        // The thread stops trying a little before the caller stops waiting, so that it can spool
        // what is left and its answer (and the final counts) arrive in time.
        let stop_by = deadline - margin(timeout);
        let (reply, answer) = bounded(1);
        let answered = self
            .control
            .send_deadline(
                Control::Shutdown {
                    deadline: stop_by,
                    reply,
                },
                deadline,
            )
            .is_ok()
            && answer.recv_deadline(deadline).is_ok();
        if answered {
            // The thread has answered and is returning: joining is quick.
            let handle = self
                .thread
                .lock()
                .map_or_else(|p| p.into_inner().take(), |mut t| t.take());
            if let Some(handle) = handle {
                let _ = handle.join();
            }
        }
        let report = self.counters.report(!answered);
        *self.final_report.get_or_init(|| report)
    }
}

/// How long before a deadline the thread stops trying and spools: a quarter of the timeout, at
/// most [`SPILL_MARGIN`].
fn margin(timeout: Duration) -> Duration {
    (timeout / 4).min(SPILL_MARGIN)
}

/// The spool of this config, if it is on and has a folder: the endpoint's subfolder of the
/// configured root, or of the default one.
fn open_spool(config: &Config, endpoint: &str) -> Option<spool::Spool> {
    if !config.spool {
        return None;
    }
    let root = config.spool_dir.clone().or_else(spool::default_root);
    match root {
        Some(root) => Some(spool::Spool::in_root(
            &root,
            endpoint,
            config.spool_max_bytes,
            config.api_key.as_deref(),
        )),
        None => {
            tracing::warn!(
                "caribou: no user cache folder to keep the spool in; set CARIBOU_SPOOL_DIR (batches Kestrel does not take are retried, then dropped)"
            );
            None
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.shutdown(DROP_TIMEOUT);
    }
}

#[cfg(test)]
mod tests;
