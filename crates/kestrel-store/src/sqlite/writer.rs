//! The one writer: a named OS thread that owns the write connection.
//!
//! Every write is a [`Job`] sent over a bounded channel (senders wait when it is full: back
//! pressure, never unbounded memory). A job's weight is what it costs the writer (records, side
//! rows, bytes; see `prepare`); jobs up to [`SMALL_JOB_WEIGHT`] are small (every batch an SDK
//! sends), heavier ones big. The thread takes what is queued and runs a group in ONE transaction:
//! each job inside its own SAVEPOINT, so a job that fails (a client mistake such as an unknown run)
//! is rolled back alone and the others still commit. Replies are sent only after COMMIT returned,
//! so an acknowledged write is on disk (`synchronous=FULL`).
//!
//! Groups and fairness: a group takes small jobs, in arrival order, while it has run less than
//! [`GROUP_TIME`] and weighs less than [`WriterLimits::max_group_weight`], taking in jobs that
//! arrive meanwhile. A big job runs alone, in a group of its own, one between two groups of small
//! jobs when both wait. So a small job waits at most for the group being run, one big job and its
//! own group, however many big jobs are queued: one client's huge batches never hold another
//! client's ingest for long, and big jobs still progress under a steady stream of small ones.
//! Jobs taken off the channel wait in the writer's two lanes; the lanes hold at most
//! [`WriterLimits::queue`] jobs (beyond, jobs stay in the channel and senders wait).
//!
//! If COMMIT itself fails, every job of the group gets an internal error and nothing of the group
//! is stored. A caller that drops its future after sending does not stop its job: the job commits
//! or fails as a whole, and its reply is discarded.
//!
//! Background work (the full-text indexer) runs on the same thread and connection, in its own
//! transactions, never inside a group: when no job is waiting ([`Pace::Idle`]), and for a short,
//! time-boxed slice after a group while jobs keep coming ([`Pace::Between`], a quarter of the
//! group's time), so it neither delays acks much nor falls behind without bound.
//!
//! Shutdown: a [`Msg::Shutdown`] closes the channel to new jobs, the jobs already queued are still
//! run, then the WAL is checkpointed and truncated (so the database file alone holds every
//! acknowledged commit, whatever the readers still have open), the connection is closed and the
//! shutdown is answered.

use std::collections::VecDeque;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::{Result, StoreError};

/// What a job leaves behind once it ran in its savepoint: whether it succeeded, and how to answer
/// its caller once the fate of the transaction is known.
struct Ran {
    ok: bool,
    /// Called with `None` after a successful COMMIT, or the commit's error.
    finish: Box<dyn FnOnce(Option<String>) + Send>,
}

/// Runs the job on the connection, or, given the error that kept it from running, only records
/// that error as its answer.
type JobFn = Box<dyn FnOnce(std::result::Result<&Connection, String>) -> Ran + Send>;

/// One write to run in the writer's transaction.
pub(crate) struct Job {
    /// Records (or rows) it writes: groups are capped by the sum.
    weight: usize,
    run: JobFn,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// Wraps `f` as a job; its result arrives on the returned receiver after COMMIT.
    pub(crate) fn new<T, F>(weight: usize, f: F) -> (Job, oneshot::Receiver<Result<T>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: JobFn = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn),
                Err(e) => Err(StoreError::Internal(format!("write not started: {e}"))),
            };
            let ok = result.is_ok();
            let finish = Box::new(move |commit_err: Option<String>| {
                let answer = match commit_err {
                    None => result,
                    Some(e) => Err(StoreError::Internal(format!("commit failed: {e}"))),
                };
                // The caller may have gone away; its write is done either way.
                let _ = tx.send(answer);
            });
            Ran { ok, finish }
        });
        (
            Job {
                weight: weight.max(1),
                run,
            },
            rx,
        )
    }
}

#[derive(Debug)]
pub(crate) enum Msg {
    Job(Job),
    Shutdown(oneshot::Sender<()>),
}

/// Sizes of the writer's queue and groups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterLimits {
    /// Jobs waiting in the channel before senders wait.
    pub queue: usize,
    /// A group stops taking jobs once their weights sum to this.
    pub max_group_weight: usize,
}

/// How much time background work may take now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// No job is waiting: a full slice (the work bounds itself so a new job waits little).
    Idle,
    /// Jobs are waiting: at most this long.
    Between(Duration),
}

/// Work the writer does when it has time, on its connection, in its own transactions. Returns
/// whether work is left. It handles (logs) its own errors: the writer only schedules it.
pub(crate) type Background = Box<dyn FnMut(&Connection, Pace) -> bool + Send>;

/// Heaviest job that is still small (see the module docs): a batch of a few thousand records,
/// any batch an SDK sends with default settings. Weights are about microseconds of the
/// writer's work (`prepare::Weight`).
pub(crate) const SMALL_JOB_WEIGHT: usize = 20_000;

/// Heaviest job: a batch heavier than this is written as several jobs (`prepare::PreparedBatch::
/// split`), so that no request holds the writer for more than about a quarter of a second.
pub(crate) const MAX_JOB_WEIGHT: usize = 250_000;

/// A group that held the writer this long is logged as a warning (the bounds above are meant to
/// keep every group well below it).
const SLOW_GROUP: Duration = Duration::from_secs(1);

/// A group of small jobs stops taking more once it has run this long.
pub(crate) const GROUP_TIME: Duration = Duration::from_millis(200);

/// Jobs taken off the channel, waiting to run: small ones and big ones.
#[derive(Debug, Default)]
struct Lanes {
    small: VecDeque<Job>,
    big: VecDeque<Job>,
}

impl Lanes {
    fn len(&self) -> usize {
        self.small.len() + self.big.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, job: Job) {
        if job.weight <= SMALL_JOB_WEIGHT {
            self.small.push_back(job);
        } else {
            self.big.push_back(job);
        }
    }

    /// Moves what is queued in the channel into the lanes (up to `max` jobs waiting); shutdown
    /// requests close the channel and are kept for the end.
    fn take_queued(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        max: usize,
        shutdowns: &mut Vec<oneshot::Sender<()>>,
    ) {
        while self.len() < max {
            match rx.try_recv() {
                Ok(msg) => self.accept(msg, rx, shutdowns),
                Err(_) => break,
            }
        }
    }

    fn accept(
        &mut self,
        msg: Msg,
        rx: &mut mpsc::Receiver<Msg>,
        shutdowns: &mut Vec<oneshot::Sender<()>>,
    ) {
        match msg {
            Msg::Job(job) => self.push(job),
            Msg::Shutdown(reply) => {
                // No new jobs; those already queued still run.
                rx.close();
                shutdowns.push(reply);
            }
        }
    }
}

/// Shortest slice between groups, so the background work always progresses under load.
const MIN_BETWEEN: Duration = Duration::from_millis(2);
/// Longest slice between groups.
const MAX_BETWEEN: Duration = Duration::from_millis(50);

/// Starts the writer thread on `conn`.
pub(crate) fn spawn(
    conn: Connection,
    limits: WriterLimits,
    background: Option<Background>,
) -> Result<(mpsc::Sender<Msg>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(limits.queue.max(1));
    let background = background.unwrap_or_else(|| Box::new(|_: &Connection, _: Pace| false));
    let handle = std::thread::Builder::new()
        .name("kestrel-sqlite-writer".to_owned())
        .spawn(move || run(conn, rx, limits, background))
        .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
    Ok((tx, handle))
}

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Msg>,
    limits: WriterLimits,
    mut background: Background,
) {
    let mut shutdowns = Vec::new();
    let mut lanes = Lanes::default();
    let max_waiting = limits.queue.max(1);
    // Work may be left from a previous run (the watermark is in the file).
    let mut backlog = true;
    // Whether the last group ran small jobs: a waiting big job goes next.
    let mut big_turn = false;
    loop {
        lanes.take_queued(&mut rx, max_waiting, &mut shutdowns);
        if lanes.is_empty() {
            if backlog && !rx.is_closed() {
                backlog = background(&conn, Pace::Idle);
                continue;
            }
            match rx.blocking_recv() {
                Some(msg) => lanes.accept(msg, &mut rx, &mut shutdowns),
                None => break,
            }
            continue;
        }
        let started = Instant::now();
        let (mut weight, mut jobs) = (0, 0);
        if !lanes.big.is_empty() && (big_turn || lanes.small.is_empty()) {
            let mut big = lanes.big.pop_front();
            run_group(&conn, || {
                let job = big.take()?;
                (weight, jobs) = (job.weight, 1);
                Some(job)
            });
            big_turn = false;
        } else {
            run_group(&conn, || {
                if started.elapsed() >= GROUP_TIME || weight >= limits.max_group_weight {
                    return None;
                }
                if lanes.small.is_empty() {
                    lanes.take_queued(&mut rx, max_waiting, &mut shutdowns);
                }
                let job = lanes.small.pop_front()?;
                weight += job.weight;
                jobs += 1;
                Some(job)
            });
            big_turn = true;
        }
        let held = started.elapsed();
        debug!(
            held_ms = held.as_millis(),
            jobs, weight, "write group committed"
        );
        if held >= SLOW_GROUP {
            warn!(
                held_ms = held.as_millis(),
                jobs, weight, "a write group held the writer long"
            );
        }
        backlog = true;
        if !rx.is_empty() || !lanes.is_empty() {
            let slice = (started.elapsed() / 4).clamp(MIN_BETWEEN, MAX_BETWEEN);
            backlog = background(&conn, Pace::Between(slice));
        }
    }
    // Every commit copied into the database file itself and the WAL emptied: the file alone (a
    // copy, a backup) then holds everything acknowledged. Closing the connection would do it
    // only as the last one open, and the readers' connections may close after this one.
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => warn!("the WAL could not be emptied at shutdown (a reader was busy); it is kept"),
        Err(e) => warn!(error = %e, "checkpointing the WAL at shutdown failed; it is kept"),
    }
    if let Err((_, e)) = conn.close() {
        error!(error = %e, "closing the sqlite write connection failed");
    }
    for reply in shutdowns {
        let _ = reply.send(());
    }
}

/// Runs the jobs `next` hands out, until it hands out none, in one transaction, one savepoint
/// each, then commits and answers them.
fn run_group(conn: &Connection, mut next: impl FnMut() -> Option<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        error!(error = %e, "cannot begin a write transaction");
        let msg = e.to_string();
        while let Some(job) = next() {
            let ran = (job.run)(Err(msg.clone()));
            (ran.finish)(None);
        }
        return;
    }
    let mut finished = Vec::new();
    while let Some(job) = next() {
        let ran = match conn.execute_batch("SAVEPOINT job") {
            Ok(()) => {
                let ran = (job.run)(Ok(conn));
                let end = if ran.ok {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                if let Err(e) = conn.execute_batch(end) {
                    warn!(error = %e, "ending a savepoint failed");
                }
                ran
            }
            Err(e) => {
                error!(error = %e, "cannot open a savepoint");
                let ran = (job.run)(Err(e.to_string()));
                (ran.finish)(None);
                continue;
            }
        };
        finished.push(ran);
    }
    let commit_err = match conn.execute_batch("COMMIT") {
        Ok(()) => None,
        Err(e) => {
            error!(error = %e, "commit failed; the whole group is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            Some(e.to_string())
        }
    };
    for ran in finished {
        (ran.finish)(commit_err.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_failing_job_is_rolled_back_alone_and_the_group_commits() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(x INTEGER)").unwrap();
        let (tx, handle) = spawn(
            conn,
            WriterLimits {
                queue: 16,
                max_group_weight: 1000,
            },
            None,
        )
        .unwrap();
        // Hold the writer busy so the next three jobs queue up and run as one group.
        let (busy, busy_rx) = Job::new(1, |_conn| {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        });
        tx.blocking_send(Msg::Job(busy)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let insert = |x: i64, fail: bool| {
            Job::new(1, move |conn| {
                conn.execute("INSERT INTO t(x) VALUES (?1)", [x])?;
                let in_tx = !conn.is_autocommit();
                if fail {
                    Err(StoreError::Invalid(format!("job {x} refused")))
                } else {
                    Ok(in_tx)
                }
            })
        };
        let (a, a_rx) = insert(1, false);
        let (b, b_rx) = insert(2, true);
        let (c, c_rx) = insert(3, false);
        for job in [a, b, c] {
            tx.blocking_send(Msg::Job(job)).unwrap();
        }
        busy_rx.blocking_recv().unwrap().unwrap();
        assert!(
            a_rx.blocking_recv().unwrap().unwrap(),
            "jobs run inside a transaction"
        );
        assert!(matches!(
            b_rx.blocking_recv().unwrap(),
            Err(StoreError::Invalid(_))
        ));
        assert!(c_rx.blocking_recv().unwrap().unwrap());
        let (read, read_rx) = Job::new(1, |conn| {
            let mut s = conn.prepare("SELECT x FROM t ORDER BY x")?;
            let xs = s
                .query_map([], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(xs)
        });
        tx.blocking_send(Msg::Job(read)).unwrap();
        assert_eq!(read_rx.blocking_recv().unwrap().unwrap(), [1, 3]);
        let (done, done_rx) = oneshot::channel();
        tx.blocking_send(Msg::Shutdown(done)).unwrap();
        done_rx.blocking_recv().unwrap();
        handle.join().unwrap();
        let (late, _late_rx) = Job::new(1, |_conn| Ok(()));
        assert!(
            tx.blocking_send(Msg::Job(late)).is_err(),
            "no job is taken after shutdown"
        );
    }
}
