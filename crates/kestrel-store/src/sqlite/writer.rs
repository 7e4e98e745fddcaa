//! The one writer: a named OS thread that owns the write connection.
//!
//! Every write is a [`Job`] sent over a bounded channel (senders wait when it is full: back
//! pressure, never unbounded memory). The thread takes the first pending job, then drains what else
//! is queued, up to [`WriterLimits::max_group_weight`] records, and runs the group in ONE
//! transaction: each job inside its own SAVEPOINT, so a job that fails (a client mistake such as an
//! unknown run) is rolled back alone and the others still commit. Replies are sent only after
//! COMMIT returned, so an acknowledged write is on disk (`synchronous=FULL`).
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

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

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
    // Work may be left from a previous run (the watermark is in the file).
    let mut backlog = true;
    loop {
        let first = match rx.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) if backlog => {
                backlog = background(&conn, Pace::Idle);
                continue;
            }
            Err(TryRecvError::Empty) => match rx.blocking_recv() {
                Some(msg) => msg,
                None => break,
            },
            Err(TryRecvError::Disconnected) => break,
        };
        let mut group = Vec::new();
        let mut weight = 0;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => {
                    weight += job.weight;
                    group.push(job);
                }
                Msg::Shutdown(reply) => {
                    // No new jobs; those already queued still run (the loop drains them).
                    rx.close();
                    shutdowns.push(reply);
                }
            }
            if weight < limits.max_group_weight {
                next = rx.try_recv().ok();
            }
        }
        if !group.is_empty() {
            let started = Instant::now();
            run_group(&conn, group);
            backlog = true;
            if !rx.is_empty() {
                let slice = (started.elapsed() / 4).clamp(MIN_BETWEEN, MAX_BETWEEN);
                backlog = background(&conn, Pace::Between(slice));
            }
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

/// Runs a group of jobs in one transaction, one savepoint each, then answers them.
fn run_group(conn: &Connection, group: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        error!(error = %e, "cannot begin a write transaction");
        let msg = e.to_string();
        for job in group {
            let ran = (job.run)(Err(msg.clone()));
            (ran.finish)(None);
        }
        return;
    }
    let mut finished = Vec::with_capacity(group.len());
    for job in group {
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
