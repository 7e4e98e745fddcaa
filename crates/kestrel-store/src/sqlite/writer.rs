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
//! Once nothing is left to do (no job waiting, no background work), the writer checkpoints the WAL
//! ([`idle_checkpoint`]) before it sleeps: readers then read every page from the database file
//! (their memory map or page cache) and skip the WAL, and the next write starts the WAL over. Under sustained
//! ingest the writer is never idle and SQLite's automatic checkpoint (every 64 MiB of WAL) does
//! the job as before.
//!
//! Shutdown: a [`Msg::Shutdown`] closes the channel to new jobs, the jobs already queued are still
//! run, then the connection is closed (which checkpoints the WAL) and the shutdown is answered.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::mpsc::error::TryRecvError;
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
    // Whether anything was committed since the last idle checkpoint (a WAL left by the previous
    // run counts).
    let mut wrote = true;
    loop {
        let first = match rx.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) if backlog => {
                backlog = background(&conn, Pace::Idle);
                continue;
            }
            Err(TryRecvError::Empty) if wrote => {
                idle_checkpoint(&conn);
                wrote = false;
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
            wrote = true;
            if !rx.is_empty() {
                let slice = (started.elapsed() / 4).clamp(MIN_BETWEEN, MAX_BETWEEN);
                backlog = background(&conn, Pace::Between(slice));
            }
        }
    }
    if let Err((_, e)) = conn.close() {
        error!(error = %e, "closing the sqlite write connection failed");
    }
    for reply in shutdowns {
        let _ = reply.send(());
    }
}

/// Copies the WAL's pages into the database file, without waiting for anyone (`PASSIVE`: pages a
/// reader's snapshot still needs stay in the WAL until the next idle time).
///
/// Why when idle: a reader looks every page up in the WAL first while the WAL holds frames not
/// yet copied, and reads the pages it finds there with a system call and a copy. Under sustained
/// ingest SQLite's automatic checkpoint (every 64 MiB) keeps the WAL bounded, but after the last
/// write of a burst up to 64 MiB stayed in it until the next one: on a 10M-item store the ANDed
/// search example took 32 ms at p50 with 9,886 such frames and 27.5 ms once they were copied
/// (`bench/README.md`, section 3). A job arriving meanwhile waits for the copy: at most one
/// automatic checkpoint's worth, which a commit under load already pays now and then.
fn idle_checkpoint(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match done {
        Ok((frames, copied)) if copied < frames => {
            debug!(
                frames,
                copied, "idle checkpoint: a reader holds the rest of the WAL"
            );
        }
        Ok(_) => {}
        Err(e) => {
            warn!(error = %e, "checkpointing the WAL failed; readers read it until the next try")
        }
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

    /// Once the writer has nothing left to do, what it wrote is copied from the WAL into the
    /// database file (pages written only to the WAL do not grow the file).
    #[test]
    fn an_idle_writer_checkpoints_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(b BLOB)")
            .unwrap();
        // No automatic checkpoint: only the idle one can copy the pages.
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        let (tx, handle) = spawn(
            conn,
            WriterLimits {
                queue: 4,
                max_group_weight: 10,
            },
            None,
        )
        .unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let (insert, insert_rx) = Job::new(1, |conn| {
            conn.execute("INSERT INTO t(b) VALUES (zeroblob(1048576))", [])?;
            Ok(())
        });
        tx.blocking_send(Msg::Job(insert)).unwrap();
        insert_rx.blocking_recv().unwrap().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < before + 1_048_576 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not checkpointed: the database file is still {} bytes",
                std::fs::metadata(&path).unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let (done, done_rx) = oneshot::channel();
        tx.blocking_send(Msg::Shutdown(done)).unwrap();
        done_rx.blocking_recv().unwrap();
        handle.join().unwrap();
    }
}
