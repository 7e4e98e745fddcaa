//! A small pool of read-only connections, used from `spawn_blocking`.
//!
//! A semaphore with one permit per connection guarantees a connection is free when a task takes
//! one, so readers wait (asynchronously) only for each other, never for the writer: in WAL mode a
//! reader sees the last commit and does not block the write connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::schema::open_reader;
use crate::{Result, StoreError};

#[derive(Debug)]
pub(crate) struct ReadPool {
    path: PathBuf,
    size: usize,
    conns: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReadPool {
    pub(crate) fn open(path: &Path, size: usize) -> Result<Arc<ReadPool>> {
        let size = size.max(1);
        let conns = (0..size)
            .map(|_| open_reader(path))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ReadPool {
            path: path.to_owned(),
            size,
            conns: Mutex::new(conns),
            permits: Semaphore::new(size),
        }))
    }

    /// Runs `f` on a read connection on the blocking thread pool.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Internal("the read pool is closed".to_owned()))?;
        let pool = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = f(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?;
        drop(permit);
        result
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
