//! The exporter thread's loop: take records, build batches, hand them to the sender thread, spool
//! what Kestrel does not take, replay the spool, answer `flush` and `shutdown`.
//!
//! One batch is built at a time and at most one batch is in flight (being sent by the
//! `caribou-sender` thread, or waiting for a retry). The HTTP request runs on the sender thread, so
//! this thread stays free to drain the queue, write the spool and answer control messages however
//! long Kestrel takes.
//!
//! A batch is sealed when it is full, when its first record is `flush_interval` old, or at once
//! while someone waits in `flush`/`shutdown`. The thread blocks on the data channel only when it
//! holds no records; otherwise it sleeps until something is due, and producers wake it once per
//! full batch, so logging does not pay a thread wake-up per record.
//!
//! Without a spool: retries back off exponentially with jitter (100 ms doubling to 10 s), or wait
//! what `Retry-After` asks; after `max_retries` retries the batch is abandoned (counted). While a
//! batch waits for a retry the thread keeps filling the next one but takes nothing more from the
//! queue, so the queue fills up and further records are dropped at the door (counted).
//!
//! With a spool ([`super::spool`]), nothing is abandoned while the disk takes it:
//! - a batch that failed [`SPOOL_AFTER_ATTEMPTS`] attempts, or is unanswered after
//!   [`SPOOL_AFTER`] (a hung Kestrel), is written to the spool, and Kestrel is taken as *down*:
//!   from then on new batches go straight to the spool, and the oldest spooled batch is retried as
//!   a probe with backoff (250 ms doubling to 15 s). The first probe Kestrel acknowledges ends the
//!   outage: new batches are sent again and the spool is replayed, oldest first, between them;
//! - while a batch is in flight and the queue is past its high-water mark (half full), full
//!   batches are spooled so that the queue keeps draining;
//! - shortly before a `flush` or `shutdown` deadline, whatever is still held (queue, batch being
//!   built, batch in flight) is spooled, so the call returns with everything either acknowledged
//!   or on disk, and says so;
//! - the folder is re-read every [`RESCAN_EVERY`] for batches other processes left there;
//! - at start, batch files lying in the spool root itself (outside every endpoint's folder) are
//!   counted and warned about once per process; they are never replayed nor touched.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, never, select};

use super::batch::{BatchBuilder, MAX_BATCH_BYTES, compressor};
use super::queue::{Counters, Queued};
use super::sender::SenderLink;
use super::spool::{Claim, Next, Spool};
use super::transport::{Outcome, backoff};

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
const REPLAY_BASE: Duration = Duration::from_millis(250);
const REPLAY_CAP: Duration = Duration::from_secs(15);
/// Attempts of a batch before it goes to the spool (when there is one).
pub const SPOOL_AFTER_ATTEMPTS: u32 = 3;
/// A batch unanswered this long is copied to the spool (Kestrel is slow or hung).
pub const SPOOL_AFTER: Duration = Duration::from_secs(3);
/// How often the spool folder is re-read for batches left by other processes.
pub const RESCAN_EVERY: Duration = Duration::from_secs(5);
/// How long the thread sleeps when it has nothing to wait for (it wakes on any message anyway).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Requests from `flush`/`shutdown` to the thread. Each carries a reply channel; the thread sends
/// `()` when done, and the caller waits on it with its own timeout.
#[derive(Debug)]
pub enum Control {
    /// A full batch's worth of records was queued: come and take it.
    Wake,
    /// Answer once `counters.settled() >= target`; from `spill_at` on, spool what is still held.
    Flush {
        target: u64,
        spill_at: Instant,
        reply: Sender<()>,
    },
    /// Send everything, until done or `deadline`; then spool (or abandon) the rest, answer, and
    /// exit.
    Shutdown {
        deadline: Instant,
        reply: Sender<()>,
    },
}

/// What the thread needs, moved in at spawn.
#[derive(Debug)]
pub struct WorkerParts {
    pub data: Receiver<Queued>,
    pub control: Receiver<Control>,
    pub counters: Arc<Counters>,
    pub sender: SenderLink,
    pub url: String,
    pub spool: Option<Spool>,
    pub max_batch_records: usize,
    pub flush_interval: Duration,
    pub max_retries: u32,
    /// Queue length past which full batches are spooled while a batch is in flight.
    pub high_water: usize,
}

/// Where the batch in flight comes from, which says how to count its end.
#[derive(Debug)]
enum Origin {
    /// Built by this exporter, not counted yet.
    Fresh,
    /// Built by this exporter and already written to the spool (counted as spooled) under this
    /// name; deleted from the spool if this send is acknowledged.
    Spooled(String),
    /// Read back from the spool (this process's or another's), claimed.
    Replay(Claim),
}

#[derive(Debug)]
struct Flight {
    body: Arc<Vec<u8>>,
    records: u64,
    /// Attempts made so far.
    attempts: u32,
    next_try: Instant,
    /// When the first attempt was handed to the sender.
    first_sent: Option<Instant>,
    origin: Origin,
}

#[derive(Debug)]
struct Waiter {
    target: u64,
    spill_at: Instant,
    spilled: bool,
    reply: Sender<()>,
}

struct Worker {
    parts: WorkerParts,
    builder: BatchBuilder,
    compressor: zstd::bulk::Compressor<'static>,
    flight: Option<Flight>,
    /// Kestrel failed its last attempt: new batches go to the spool, replays probe.
    down: bool,
    /// False once a spool write failed: back to retrying and dropping (warned).
    spool_ok: bool,
    replay_at: Instant,
    replay_failures: u32,
    rescan_at: Instant,
    waiters: Vec<Waiter>,
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
    let now = Instant::now();
    let mut worker = Worker {
        spool_ok: parts.spool.is_some(),
        parts,
        builder,
        compressor,
        flight: None,
        down: false,
        replay_at: now,
        replay_failures: 0,
        rescan_at: now,
        waiters: Vec::new(),
        shutdown: None,
        data_open: true,
        control_open: true,
        rng,
    };
    if let Some(spool) = &worker.parts.spool {
        warn_leftovers(spool, &worker.parts.url);
    }
    worker.run();
}

/// Warns (once per process and spool root) about batch files in the root itself, which no
/// process replays: the root does not say which Kestrel they were spooled for (see
/// [`super::spool`]). They are left where they are.
fn warn_leftovers(spool: &Spool, ingest_url: &str) {
    let Some(root) = spool.root() else { return };
    let found = super::spool::leftovers(root);
    if found.files == 0 {
        return;
    }
    let endpoint = ingest_url
        .strip_suffix(super::transport::INGEST_PATH)
        .unwrap_or(ingest_url);
    crate::notice::warn_once(
        &leftovers_key(root),
        format!(
            "caribou: {} spooled batch file(s) ({} records) lie in the spool folder {} itself, \
             where they are never replayed: batches are kept in one subfolder per Kestrel \
             endpoint, and these do not say which Kestrel they were spooled for. They are left \
             alone. If they were spooled for {endpoint}, move them into {} to deliver them",
            found.files,
            found.records,
            root.display(),
            spool.dir().display()
        ),
    );
}

/// The key under which leftovers in `root` warn once (see [`crate::notice`]).
pub(crate) fn leftovers_key(root: &std::path::Path) -> String {
    format!("spool-leftovers:{}", root.display())
}

impl Worker {
    fn run(&mut self) {
        loop {
            let now = Instant::now();
            self.take_waiting();
            let urgent = !self.waiters.is_empty() || self.shutdown.is_some() || !self.data_open;
            if !self.builder.is_empty() {
                let old = self
                    .builder
                    .first_at()
                    .is_some_and(|t| now >= t + self.parts.flush_interval);
                if urgent || old || self.builder.is_full() {
                    if self.spooling() && self.down {
                        self.seal_to_spool(now);
                    } else if self.flight.is_none() {
                        self.seal_to_flight(now);
                    }
                }
            }
            self.spool_if_slow(now);
            let past_deadline = self.shutdown.as_ref().is_some_and(|(d, _)| now >= *d);
            // Settled waiters first: only someone still waiting is a reason to spill.
            self.answer_waiters();
            let spill_due = self.waiters.iter().any(|w| !w.spilled && now >= w.spill_at);
            if self.spooling() && (past_deadline || spill_due) {
                self.spill(now);
            }
            for w in &mut self.waiters {
                w.spilled |= now >= w.spill_at;
            }
            if self.spooling() && now >= self.rescan_at {
                self.rescan(now);
            }
            if self.flight.is_none() && self.shutdown.is_none() && now >= self.replay_at {
                self.start_replay(now);
            }
            if !past_deadline {
                self.dispatch(now);
            }
            self.answer_waiters();
            if (self.shutdown.is_some() || !self.data_open) && (self.own_idle() || past_deadline) {
                self.stop();
                return;
            }
            self.wait(now);
        }
    }

    fn spooling(&self) -> bool {
        self.spool_ok
    }

    /// Nothing of this exporter's own records is held (a replay in flight does not count).
    fn own_idle(&self) -> bool {
        self.builder.is_empty()
            && self.parts.data.is_empty()
            && self
                .flight
                .as_ref()
                .is_none_or(|f| !matches!(f.origin, Origin::Fresh))
    }

    /// Moves queued records into the batch being built, without blocking, until it is full. With
    /// a spool, full batches go to disk while Kestrel is down or the queue is past its high-water
    /// mark, so the queue keeps draining.
    fn take_waiting(&mut self) {
        loop {
            while self.data_open && !self.builder.is_full() {
                match self.parts.data.try_recv() {
                    Ok(record) => self.add(record),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => self.data_open = false,
                }
            }
            let pressed = self.down
                || (self.flight.is_some() && self.parts.data.len() >= self.parts.high_water);
            if self.builder.is_full() && self.spooling() && pressed {
                self.seal_to_spool(Instant::now());
                continue;
            }
            return;
        }
    }

    fn add(&mut self, record: Queued) {
        // Out of the queue: its bytes no longer count against the bound.
        self.parts
            .counters
            .queued_bytes
            .fetch_sub(record.approx_bytes(), Ordering::Relaxed);
        self.builder.push(&record);
    }

    /// Seals the batch being built: `(body, records)`, or `None` if compression failed (counted).
    fn seal(&mut self) -> Option<(Vec<u8>, u64)> {
        let records = self.builder.len();
        match self.builder.seal(&mut self.compressor) {
            Ok(batch) => {
                tracing::trace!(
                    records,
                    json_bytes = batch.json_bytes,
                    bytes = batch.body.len(),
                    "caribou: batch sealed"
                );
                Some((batch.body, batch.records))
            }
            Err(e) => {
                self.give_up(records, false);
                tracing::warn!(error = %e, records, "caribou: zstd compression failed; batch dropped");
                None
            }
        }
    }

    fn seal_to_flight(&mut self, now: Instant) {
        if let Some((body, records)) = self.seal() {
            self.flight = Some(Flight {
                body: Arc::new(body),
                records,
                attempts: 0,
                next_try: now,
                first_sent: None,
                origin: Origin::Fresh,
            });
        }
    }

    fn seal_to_spool(&mut self, now: Instant) {
        let Some((body, records)) = self.seal() else {
            return;
        };
        if self.write_spool(&body, records).is_some() {
            return;
        }
        // The spool failed (warned, and now off): send it like any batch, or drop it if one is
        // already in flight.
        if self.flight.is_none() {
            self.flight = Some(Flight {
                body: Arc::new(body),
                records,
                attempts: 0,
                next_try: now,
                first_sent: None,
                origin: Origin::Fresh,
            });
        } else {
            self.give_up(records, false);
        }
    }

    /// Writes a batch of this exporter to the spool and counts it. `None`: not written (warned
    /// once; the spool is off for this exporter from now on).
    fn write_spool(&mut self, body: &[u8], records: u64) -> Option<String> {
        let spool = self.parts.spool.as_mut()?;
        let counters = &self.parts.counters;
        match spool.write(body, records) {
            Ok(written) => {
                counters.spooled.fetch_add(records, Ordering::AcqRel);
                if Counters::first(&counters.warned_spooling) {
                    tracing::warn!(
                        dir = %spool.dir().display(),
                        url = self.parts.url,
                        "caribou: kestrel is not taking batches; keeping them in the spool until it does"
                    );
                }
                if written.evicted_records > 0 {
                    counters
                        .spool_dropped
                        .fetch_add(written.evicted_records, Ordering::AcqRel);
                    if Counters::first(&counters.warned_spool_dropped) {
                        tracing::warn!(
                            records = written.evicted_records,
                            files = written.evicted_files,
                            dir = %spool.dir().display(),
                            "caribou: the spool is full; its oldest batches were deleted (counted as dropped; raise CARIBOU_SPOOL_MAX_BYTES)"
                        );
                        crate::notice::keep(format!(
                            "caribou: the spool {} is full; its oldest batches were deleted ({} records, counted as \
                             dropped; raise CARIBOU_SPOOL_MAX_BYTES)",
                            spool.dir().display(),
                            written.evicted_records
                        ));
                    }
                }
                Some(written.name)
            }
            Err(e) => {
                if Counters::first(&counters.warned_spool_failed) {
                    tracing::warn!(
                        error = %e,
                        dir = %spool.dir().display(),
                        "caribou: cannot write to the spool; it is off for this exporter (batches are retried, then dropped and counted)"
                    );
                    crate::notice::keep(format!(
                        "caribou: cannot write to the spool {} ({e}); it is off for this exporter (batches are \
                         retried, then dropped and counted)",
                        spool.dir().display()
                    ));
                }
                self.spool_ok = false;
                self.down = false;
                None
            }
        }
    }

    /// Copies the fresh batch in flight to the spool. True if it is there now.
    fn spool_flight(&mut self) -> bool {
        let Some((body, records)) = self
            .flight
            .as_ref()
            .filter(|f| matches!(f.origin, Origin::Fresh))
            .map(|f| (f.body.clone(), f.records))
        else {
            return false;
        };
        let Some(name) = self.write_spool(&body, records) else {
            return false;
        };
        if let Some(f) = self.flight.as_mut() {
            f.origin = Origin::Spooled(name);
        }
        true
    }

    /// A fresh batch unanswered for [`SPOOL_AFTER`]: Kestrel is hung or very slow.
    fn spool_if_slow(&mut self, now: Instant) {
        let slow = self.flight.as_ref().is_some_and(|f| {
            matches!(f.origin, Origin::Fresh)
                && self.parts.sender.busy()
                && f.first_sent.is_some_and(|t| now >= t + SPOOL_AFTER)
        });
        if slow && self.spooling() && self.spool_flight() {
            self.down = true;
        }
    }

    /// Spools everything this exporter holds (queued when the spill began, being built, in
    /// flight), for a `flush` or `shutdown` about to reach its deadline.
    fn spill(&mut self, now: Instant) {
        let mut budget = self.parts.data.len();
        loop {
            while budget > 0 && !self.builder.is_full() {
                match self.parts.data.try_recv() {
                    Ok(record) => {
                        budget -= 1;
                        self.add(record);
                    }
                    Err(_) => budget = 0,
                }
            }
            if self.builder.is_empty() || !self.spooling() {
                break;
            }
            self.seal_to_spool(now);
            if budget == 0 && self.builder.is_empty() {
                break;
            }
        }
        let sending = self.parts.sender.busy();
        if self.spool_flight() && !sending {
            // Waiting for a retry: the spooled copy is what will be sent (by a replay).
            self.flight = None;
            self.schedule_replay(now, None);
        }
    }

    fn rescan(&mut self, now: Instant) {
        self.rescan_at = now + RESCAN_EVERY;
        if let Some(spool) = self.parts.spool.as_mut()
            && let Err(e) = spool.scan()
        {
            tracing::debug!(error = %e, "caribou: cannot read the spool folder");
        }
    }

    /// Claims the oldest spooled batch as the batch in flight.
    fn start_replay(&mut self, now: Instant) {
        let Some(spool) = self.parts.spool.as_mut() else {
            return;
        };
        while spool.has_batches() {
            match spool.claim_next() {
                Some(Next::Batch(mut claim)) => {
                    let body = Arc::new(std::mem::take(&mut claim.body));
                    self.flight = Some(Flight {
                        body,
                        records: claim.records,
                        attempts: 0,
                        next_try: now,
                        first_sent: None,
                        origin: Origin::Replay(claim),
                    });
                    return;
                }
                Some(Next::Damaged { records }) => {
                    let counters = &self.parts.counters;
                    counters.spool_dropped.fetch_add(records, Ordering::AcqRel);
                    tracing::warn!(
                        records,
                        dir = %spool.dir().display(),
                        "caribou: a damaged spool batch was deleted (counted as dropped)"
                    );
                }
                None => return,
            }
        }
    }

    fn schedule_replay(&mut self, now: Instant, after: Option<Duration>) {
        self.replay_failures = self.replay_failures.saturating_add(1);
        let random = next_random(&mut self.rng);
        let wait =
            after.unwrap_or_else(|| backoff(self.replay_failures, REPLAY_BASE, REPLAY_CAP, random));
        self.replay_at = now + wait;
    }

    /// Hands the batch in flight to the sender thread when it is due.
    fn dispatch(&mut self, now: Instant) {
        if self.parts.sender.busy() {
            return;
        }
        let Some(flight) = self.flight.as_mut() else {
            return;
        };
        if flight.next_try > now {
            return;
        }
        if self.parts.sender.send(flight.body.clone()) {
            flight.attempts += 1;
            flight.first_sent.get_or_insert(now);
        }
    }

    /// A spooled batch Kestrel answered for good (acknowledged, or refused for good): its file
    /// leaves the spool. Nothing to do for a fresh batch.
    fn settle_spooled(&mut self, origin: Origin) {
        let Some(spool) = self.parts.spool.as_mut() else {
            return;
        };
        match origin {
            Origin::Fresh => {}
            Origin::Spooled(name) => {
                spool.remove_written(&name);
            }
            Origin::Replay(claim) => spool.complete(claim),
        }
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        self.parts.sender.answered();
        let Some(flight) = self.flight.take() else {
            return;
        };
        let now = Instant::now();
        let records = flight.records;
        match outcome {
            Outcome::Acked => {
                let counters = &self.parts.counters;
                self.down = false;
                self.replay_failures = 0;
                self.replay_at = now;
                match flight.origin {
                    Origin::Fresh => {
                        counters.sent.fetch_add(records, Ordering::AcqRel);
                        tracing::debug!(
                            records,
                            bytes = flight.body.len(),
                            "caribou: batch acknowledged"
                        );
                    }
                    spooled => {
                        counters.spool_sent.fetch_add(records, Ordering::AcqRel);
                        if matches!(spooled, Origin::Replay(_)) {
                            tracing::debug!(records, "caribou: spooled batch acknowledged");
                        }
                        self.settle_spooled(spooled);
                    }
                }
            }
            Outcome::Rejected { status, message } => {
                let counters = &self.parts.counters;
                if Counters::first(&counters.warned_rejected) {
                    tracing::warn!(
                        status,
                        records,
                        error = %message,
                        url = self.parts.url,
                        "caribou: kestrel refused a batch; it is dropped (further refusals are counted, not logged)"
                    );
                    crate::notice::keep(format!(
                        "caribou: kestrel refused a batch of {records} records ({status}: {message}); it is dropped \
                         (further refusals are counted, not logged)"
                    ));
                }
                match flight.origin {
                    Origin::Fresh => self.give_up(records, true),
                    spooled => {
                        counters.spool_dropped.fetch_add(records, Ordering::AcqRel);
                        self.settle_spooled(spooled);
                    }
                }
            }
            Outcome::Retry { after, reason } => {
                self.warn_unreachable(&reason);
                match flight.origin {
                    Origin::Fresh => self.retry_fresh(flight, after, &reason, now),
                    Origin::Spooled(_) => {
                        // Its copy in the spool is what will be sent again.
                        self.down = true;
                        self.schedule_replay(now, after);
                    }
                    Origin::Replay(claim) => {
                        if let Some(spool) = self.parts.spool.as_mut() {
                            spool.release(claim);
                        }
                        self.down = true;
                        self.schedule_replay(now, after);
                    }
                }
            }
        }
    }

    fn retry_fresh(
        &mut self,
        mut flight: Flight,
        after: Option<Duration>,
        reason: &str,
        now: Instant,
    ) {
        let records = flight.records;
        let spool_after = SPOOL_AFTER_ATTEMPTS.min(self.parts.max_retries.saturating_add(1));
        if self.spooling() && flight.attempts >= spool_after {
            self.flight = Some(flight);
            if self.spool_flight() {
                self.flight = None;
                self.down = true;
                self.schedule_replay(now, after);
                return;
            }
            let Some(f) = self.flight.take() else { return };
            flight = f;
        }
        if flight.attempts > self.parts.max_retries {
            if Counters::first(&self.parts.counters.warned_abandoned) {
                tracing::warn!(
                    records,
                    attempts = flight.attempts,
                    error = %reason,
                    "caribou: giving up on a batch after its retries; it is dropped (further ones are counted, not logged)"
                );
                crate::notice::keep(format!(
                    "caribou: giving up on a batch of {records} records after {} attempts ({reason}); it is \
                     dropped (further ones are counted, not logged)",
                    flight.attempts
                ));
            }
            self.give_up(records, false);
            return;
        }
        let wait = after.unwrap_or_else(|| {
            let random = next_random(&mut self.rng);
            backoff(flight.attempts, BACKOFF_BASE, BACKOFF_CAP, random)
        });
        tracing::debug!(attempt = flight.attempts, wait_ms = wait.as_millis() as u64, error = %reason, "caribou: batch will be retried");
        flight.next_try = now + wait;
        self.flight = Some(flight);
    }

    fn warn_unreachable(&self, reason: &str) {
        if Counters::first(&self.parts.counters.warned_unreachable) {
            tracing::warn!(
                error = %reason,
                url = self.parts.url,
                "caribou: kestrel did not take a batch; retrying with backoff"
            );
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
        self.waiters.retain(|w| {
            let done = settled >= w.target;
            if done {
                let _ = w.reply.try_send(());
            }
            !done
        });
    }

    /// Blocks until a record, a control message, an answer from the sender, or the next due time.
    fn wait(&mut self, now: Instant) {
        let mut wake: Option<Instant> = None;
        let mut sooner = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        let busy = self.parts.sender.busy();
        if let Some(f) = &self.flight {
            if !busy {
                sooner(f.next_try);
            } else if let (Origin::Fresh, Some(t)) = (&f.origin, f.first_sent)
                && self.spool_ok
            {
                sooner(t + SPOOL_AFTER);
            }
        }
        // A batch due with nowhere to go (one in flight, Kestrel not down) would spin: only wait
        // for it when it can move.
        let builder_can_move = self.flight.is_none() || (self.spool_ok && self.down);
        if builder_can_move && let Some(first) = self.builder.first_at() {
            sooner(first + self.parts.flush_interval);
        }
        if let Some((deadline, _)) = &self.shutdown {
            sooner(*deadline);
        }
        if self.spool_ok {
            for w in self.waiters.iter().filter(|w| !w.spilled) {
                sooner(w.spill_at);
            }
            sooner(self.rescan_at);
            let can_replay = self.flight.is_none()
                && self.shutdown.is_none()
                && self.parts.spool.as_ref().is_some_and(Spool::has_batches);
            if can_replay {
                sooner(self.replay_at);
            }
        }
        let timeout = wake.map_or(IDLE_WAIT, |w| w.saturating_duration_since(now));
        let no_data = never();
        let no_control = never();
        let no_outcome = never();
        // Listen on the data channel only while holding no records. A receiver blocked on it
        // makes every `try_send` take the channel's waker lock and wake this thread (a futex call
        // per record); while a batch fills, the thread sleeps on its timer instead, and producers
        // only nudge it once per full batch (`Control::Wake`).
        let data = if self.data_open && self.builder.is_empty() {
            &self.parts.data
        } else {
            &no_data
        };
        let control = if self.control_open {
            &self.parts.control
        } else {
            &no_control
        };
        let outcomes = if busy {
            &self.parts.sender.outcomes
        } else {
            &no_outcome
        };
        select! {
            recv(data) -> msg => match msg {
                Ok(record) => self.add(record),
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
            recv(outcomes) -> msg => match msg {
                Ok(outcome) => self.on_outcome(outcome),
                // The sender thread is gone (it cannot be, short of a panic): count the batch as
                // unanswered.
                Err(_) => self.on_outcome(Outcome::Retry { after: None, reason: "the sender thread stopped".into() }),
            },
            default(timeout) => {}
        }
    }

    fn control(&mut self, msg: Control) {
        match msg {
            Control::Wake => {}
            Control::Flush {
                target,
                spill_at,
                reply,
            } => self.waiters.push(Waiter {
                target,
                spill_at,
                spilled: false,
                reply,
            }),
            Control::Shutdown { deadline, reply } => match &mut self.shutdown {
                Some((d, replies)) => {
                    *d = (*d).min(deadline);
                    replies.push(reply);
                }
                None => self.shutdown = Some((deadline, vec![reply])),
            },
        }
    }

    /// Spools (or, without a spool, abandons) what is left, answers everyone, and lets the thread
    /// end.
    fn stop(&mut self) {
        let now = Instant::now();
        if self.spooling() {
            self.spill(now);
        }
        let mut left = self.builder.len();
        match self.flight.take().map(|f| (f.origin, f.records)) {
            Some((Origin::Fresh, records)) => left += records,
            // Its answer will not be read: put it back (the sender may still deliver it, and a
            // later replay send it again: harmless).
            Some((Origin::Replay(claim), _)) => {
                if let Some(spool) = self.parts.spool.as_mut() {
                    spool.release(claim);
                }
            }
            Some((Origin::Spooled(_), _)) | None => {}
        }
        self.builder = BatchBuilder::new(1, 1);
        // Count what is still queued. A record that races in after this (logged on another thread
        // while the exporter stops) is discarded with the queue and stays counted as pending.
        while let Ok(record) = self.parts.data.try_recv() {
            self.parts
                .counters
                .queued_bytes
                .fetch_sub(record.approx_bytes(), Ordering::Relaxed);
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
                spool = counters.spool_dropped.load(Ordering::Relaxed),
                sent = counters.sent.load(Ordering::Relaxed),
                spooled = counters.spooled.load(Ordering::Relaxed),
                "caribou: exporter stopped; records were dropped"
            );
            crate::notice::keep(format!(
                "caribou: exporter stopped; {dropped} records were dropped in all (see caribou.stats() for \
                 why: queue full, invalid, refused by Kestrel, retries exhausted, spool full)"
            ));
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.try_send(());
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
