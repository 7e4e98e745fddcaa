//! A small pool of read-only connections, used from `spawn_blocking`.
//!
//! A semaphore with one permit per connection guarantees a connection is free when a task takes
//! one, so readers wait (asynchronously) only for each other, never for the writer: in WAL mode a
//! reader sees the last commit and does not block the write connection.
//!
//! Every read has a deadline, counted from the call (the wait for a connection included): a
//! SQLite progress handler, run every [`PROGRESS_OPS`] virtual-machine steps, interrupts the
//! statement past it, and the read answers [`StoreError::Unavailable`]. Dropping the read's
//! future (its client went away) interrupts it the same way, so an abandoned search frees its
//! connection within milliseconds instead of running to its end. Work a read does outside SQLite
//! (decompressing a trace's chunks) is bounded by the trace, not interrupted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::schema::open_reader;
use crate::{Result, StoreError};

/// SQLite virtual-machine steps between two looks at the deadline (about a millisecond of work).
const PROGRESS_OPS: i32 = 10_000;

#[derive(Debug)]
pub(crate) struct ReadPool {
    path: PathBuf,
    size: usize,
    conns: Mutex<Vec<Connection>>,
    permits: Semaphore,
    /// How long one read may take.
    timeout: Duration,
}

/// Set when a read's future is dropped before the read finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl ReadPool {
    pub(crate) fn open(path: &Path, size: usize, timeout: Duration) -> Result<Arc<ReadPool>> {
        let size = size.max(1);
        let conns = (0..size)
            .map(|_| open_reader(path))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ReadPool {
            path: path.to_owned(),
            size,
            conns: Mutex::new(conns),
            permits: Semaphore::new(size),
            timeout,
        }))
    }

    /// Runs `f` on a read connection on the blocking thread pool, within the pool's timeout.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let deadline = Instant::now() + self.timeout;
        let permit = match tokio::time::timeout_at(deadline.into(), self.permits.acquire()).await {
            Ok(permit) => {
                permit.map_err(|_| StoreError::Internal("the read pool is closed".to_owned()))?
            }
            Err(_) => return Err(self.too_slow("waited for a free read connection")),
        };
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancelled));
        let pool = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let interrupted = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&interrupted);
            conn.progress_handler(
                PROGRESS_OPS,
                Some(move || {
                    let stop = cancelled.load(Ordering::Relaxed) || Instant::now() >= deadline;
                    if stop {
                        flag.store(true, Ordering::Relaxed);
                    }
                    stop
                }),
            );
            let result = f(&conn);
            conn.progress_handler(0, None::<fn() -> bool>);
            pool.give_back(conn);
            match result {
                Err(_) if interrupted.load(Ordering::Relaxed) => {
                    Err(pool.too_slow("ran past it and was stopped"))
                }
                other => other,
            }
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?;
        drop(permit);
        result
    }

    /// The answer of a read that did not finish by its deadline.
    fn too_slow(&self, what: &str) -> StoreError {
        StoreError::Unavailable(format!(
            "the query {what}: every query has a deadline of {} ms on this server. Narrow it \
             (a time range such as since:24h, a project, fewer words) or ask the operator to \
             raise --query-timeout",
            self.timeout.as_millis()
        ))
    }

    /// A free connection; a new one if none is free (a read whose caller was cancelled may still
    /// hold one while its permit is already back).
    fn take(&self) -> Result<Connection> {
        let free = self
            .conns
            .lock()
            .map_err(|_| StoreError::Internal("the read pool lock is poisoned".to_owned()))?
            .pop();
        match free {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut conns) = self.conns.lock()
            && conns.len() < self.size
        {
            conns.push(conn);
        }
    }
}
