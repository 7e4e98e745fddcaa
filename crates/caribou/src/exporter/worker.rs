//! The exporter thread's loop.
//!
//! One batch is built at a time and at most one sealed batch is in flight (sent, or waiting to be
//! retried). While a batch waits for a retry the thread keeps filling the next batch but takes
//! nothing more from the queue, so when Kestrel is away the queue fills up and further records are
//! dropped at the door (counted): memory stays bounded by the queue plus two batches.
//!
//! A batch is sealed and sent when it is full, when its first record is `flush_interval` old, or at
//! once while someone waits in `flush`/`shutdown`. The thread blocks on the data channel only when
//! it holds nothing; otherwise it sleeps until the batch is due, and producers wake it once per
//! full batch, so logging does not pay a thread wake-up per record. Retries back off exponentially with jitter
//! (100 ms doubling to 10 s), or wait what `Retry-After` asks; after `max_retries` retries the
//! batch is abandoned. The thread answers control messages between sends, never during one: a
//! request is bounded by the transport's timeouts, and callers wait on their reply with their own
//! timeout, so a hung Kestrel never holds a caller past its deadline.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, never, select};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::batch::{BatchBuilder, MAX_BATCH_BYTES, SealedBatch, compressor};
use super::queue::{Counters, Queued};
use super::transport::{Outcome, Transport, backoff};

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// How long the thread sleeps when it has nothing to wait for (it wakes on any message anyway).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Requests from `flush`/`shutdown` to the thread. Each carries a reply channel; the thread sends
/// `()` when done, and the caller waits on it with its own timeout.
#[derive(Debug)]
pub enum Control {
    /// A full batch's worth of records was queued: come and take it.
    Wake,
    /// Answer once `counters.settled() >= target`.
    Flush { target: u64, reply: Sender<()> },
    /// Send everything, until done or `deadline`; abandon the rest, answer, and exit.
    Shutdown {
        deadline: Instant,
        reply: Sender<()>,
    },
}

/// What the thread needs, moved in at spawn.
#[derive(Debug)]
pub struct WorkerParts {
    pub data: Receiver<Box<Queued>>,
    pub control: Receiver<Control>,
    pub counters: Arc<Counters>,
    pub transport: Transport,
    pub max_batch_records: usize,
    pub flush_interval: Duration,
    pub max_retries: u32,
}

struct InFlight {
    batch: SealedBatch,
    /// Attempts made so far.
    attempts: u32,
    next_try: Instant,
}

struct Worker {
    parts: WorkerParts,
    builder: BatchBuilder,
    compressor: zstd::bulk::Compressor<'static>,
    inflight: Option<InFlight>,
    waiters: Vec<(u64, Sender<()>)>,
    shutdown: Option<(Instant, Vec<Sender<()>>)>,
    data_open: bool,
    control_open: bool,
    rng: u64,
}

/// The thread's body. Returns when shut down, or when every sender is gone.
pub fn run(parts: WorkerParts) {
    let compressor = match compressor() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "caribou: cannot create a zstd compressor; the exporter stops");
            return;
        }
    };
    let builder = BatchBuilder::new(parts.max_batch_records, MAX_BATCH_BYTES);
    let rng = crate::ids::new_id_and_ts().0.as_u64_pair().1 | 1;
    let mut worker = Worker {
        parts,
        builder,
        compressor,
        inflight: None,
        waiters: Vec::new(),
        shutdown: None,
        data_open: true,
        control_open: true,
        rng,
    };
    worker.run();
}

impl Worker {
    fn run(&mut self) {
        loop {
            self.take_waiting();
            let now = Instant::now();
            let urgent = !self.waiters.is_empty() || self.shutdown.is_some() || !self.data_open;
            if self.inflight.is_none() && !self.builder.is_empty() {
                let old = self
                    .builder
                    .first_at()
                    .is_some_and(|t| now >= t + self.parts.flush_interval);
                if urgent || old || self.builder.is_full() {
                    self.seal(now);
                }
            }
            let past_deadline = self.shutdown.as_ref().is_some_and(|(d, _)| now >= *d);
            if !past_deadline && self.inflight.as_ref().is_some_and(|f| f.next_try <= now) {
                self.attempt();
                self.answer_waiters();
                continue;
            }
            self.answer_waiters();
            let idle =
                self.inflight.is_none() && self.builder.is_empty() && self.parts.data.is_empty();
            if (self.shutdown.is_some() || !self.data_open) && (idle || past_deadline) {
                self.stop();
                return;
            }
            self.wait(now);
        }
    }

    /// Moves queued records into the batch being built, without blocking, until it is full.
    fn take_waiting(&mut self) {
        // Nothing more is taken while a batch waits to be retried and the next one is full.
        while self.data_open && !self.builder.is_full() {
            match self.parts.data.try_recv() {
                Ok(record) => self.add(&record),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.data_open = false,
            }
        }
    }

    fn add(&mut self, record: &Queued) {
        if let Err(e) = self.builder.push(record) {
            // Cannot happen with the model's types; counted rather than trusted.
            self.parts.counters.rejected.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(error = %e, "caribou: a record could not be serialized and was dropped");
        }
    }

    fn seal(&mut self, now: Instant) {
        let records = self.builder.len();
        match self.builder.seal(&mut self.compressor) {
            Ok(batch) => {
                self.inflight = Some(InFlight {
                    batch,
                    attempts: 0,
                    next_try: now,
                })
            }
            Err(e) => {
                self.give_up(records, false);
                tracing::warn!(error = %e, records, "caribou: zstd compression failed; batch dropped");
            }
        }
    }

    fn attempt(&mut self) {
        let Some(flight) = self.inflight.as_mut() else {
            return;
        };
        flight.attempts += 1;
        let records = flight.batch.records;
        let counters = &self.parts.counters;
        match self.parts.transport.post(&flight.batch.body) {
            Outcome::Acked => {
                counters.sent.fetch_add(records, Ordering::AcqRel);
                tracing::debug!(
                    records,
                    bytes = flight.batch.body.len(),
                    json_bytes = flight.batch.json_bytes,
                    "caribou: batch acknowledged"
                );
                self.inflight = None;
            }
            Outcome::Rejected { status, message } => {
                if Counters::first(&counters.warned_rejected) {
                    tracing::warn!(
                        status,
                        records,
                        error = %message,
                        url = self.parts.transport.url(),
                        "caribou: kestrel refused a batch; it is dropped (further refusals are counted, not logged)"
                    );
                }
                self.inflight = None;
                self.give_up(records, true);
            }
            Outcome::Retry { after, reason } => {
                if flight.attempts > self.parts.max_retries {
                    if Counters::first(&counters.warned_abandoned) {
                        tracing::warn!(
                            records,
                            attempts = flight.attempts,
                            error = %reason,
                            "caribou: giving up on a batch after its retries; it is dropped (further ones are counted, not logged)"
                        );
                    }
                    self.inflight = None;
                    self.give_up(records, false);
                    return;
                }
                if Counters::first(&counters.warned_unreachable) {
                    tracing::warn!(
                        error = %reason,
                        url = self.parts.transport.url(),
                        "caribou: kestrel did not take a batch; retrying with backoff"
                    );
                }
                let wait = after.unwrap_or_else(|| {
                    let random = next_random(&mut self.rng);
                    backoff(flight.attempts, BACKOFF_BASE, BACKOFF_CAP, random)
                });
                tracing::debug!(attempt = flight.attempts, wait_ms = wait.as_millis() as u64, error = %reason, "caribou: batch will be retried");
                flight.next_try = Instant::now() + wait;
            }
        }
    }

    /// Counts `records` enqueued records as settled without being sent.
    fn give_up(&self, records: u64, rejected: bool) {
        let counters = &self.parts.counters;
        counters.failed_batches.fetch_add(1, Ordering::AcqRel);
        let counter = if rejected {
            &counters.rejected
        } else {
            &counters.abandoned
        };
        counter.fetch_add(records, Ordering::AcqRel);
    }

    fn answer_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let settled = self.parts.counters.settled();
        // A send fails only when the caller stopped waiting (timed out): nothing to do.
        self.waiters.retain(|(target, reply)| {
            let done = settled >= *target;
            if done {
                let _ = reply.try_send(());
            }
            !done
        });
    }

    /// Blocks until a record, a control message, or the next due time.
    fn wait(&mut self, now: Instant) {
        let mut wake: Option<Instant> = None;
        let mut sooner = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if let Some(f) = &self.inflight {
            sooner(f.next_try);
        } else if let Some(first) = self.builder.first_at() {
            sooner(first + self.parts.flush_interval);
        }
        if let Some((deadline, _)) = &self.shutdown {
            sooner(*deadline);
        }
        let timeout = wake.map_or(IDLE_WAIT, |w| w.saturating_duration_since(now));
        let no_data = never();
        let no_control = never();
        // Listen on the data channel only when idle. A receiver blocked on it makes every
        // `try_send` take the channel's waker lock and wake this thread (a futex call per record);
        // while a batch fills, the thread sleeps on its timer instead, and producers only nudge it
        // once per full batch (`Control::Wake`).
        let idle = self.inflight.is_none() && self.builder.is_empty();
        let data = if self.data_open && idle {
            &self.parts.data
        } else {
            &no_data
        };
        let control = if self.control_open {
            &self.parts.control
        } else {
            &no_control
        };
        select! {
            recv(data) -> msg => match msg {
                Ok(record) => self.add(&record),
                Err(_) => self.data_open = false,
            },
            recv(control) -> msg => match msg {
                Ok(msg) => self.control(msg),
                // Every handle is gone without a shutdown: finish what is queued, briefly.
                Err(_) => {
                    self.control_open = false;
                    if self.shutdown.is_none() {
                        self.shutdown = Some((Instant::now() + Duration::from_secs(5), Vec::new()));
                    }
                }
            },
            default(timeout) => {}
        }
    }

    fn control(&mut self, msg: Control) {
        match msg {
            Control::Wake => {}
            Control::Flush { target, reply } => self.waiters.push((target, reply)),
            Control::Shutdown { deadline, reply } => match &mut self.shutdown {
                Some((d, replies)) => {
                    *d = (*d).min(deadline);
                    replies.push(reply);
                }
                None => self.shutdown = Some((deadline, vec![reply])),
            },
        }
    }

    /// Abandons what is left, answers everyone, and lets the thread end.
    fn stop(&mut self) {
        let mut left = self.inflight.take().map_or(0, |f| f.batch.records) + self.builder.len();
        self.builder = BatchBuilder::new(1, 1);
        // Count what is still queued. A record that races in after this (logged on another thread
        // while the exporter stops) is discarded with the queue and stays counted as pending.
        while let Ok(_record) = self.parts.data.try_recv() {
            left += 1;
        }
        if left > 0 {
            self.give_up(left, false);
        }
        let counters = &self.parts.counters;
        let dropped = counters.dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                queue_full = counters.full.load(Ordering::Relaxed),
                invalid = counters.invalid.load(Ordering::Relaxed),
                rejected = counters.rejected.load(Ordering::Relaxed),
                unsent = counters.abandoned.load(Ordering::Relaxed),
                sent = counters.sent.load(Ordering::Relaxed),
                "caribou: exporter stopped; records were dropped"
            );
        }
        for (_, reply) in self.waiters.drain(..) {
            let _ = reply.try_send(());
        }
        if let Some((_, replies)) = self.shutdown.take() {
            for reply in replies {
                let _ = reply.try_send(());
            }
        }
    }
}

fn next_random(state: &mut u64) -> u64 {
    // xorshift64*: only for jitter.
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}
