//! Opening connections and migrating the schema.
//!
//! Migrations are numbered SQL files in `migrations/`, embedded in the binary and applied in order,
//! all pending ones inside one transaction; the schema version lives in `PRAGMA user_version`. A
//! database whose version is newer than [`LATEST_VERSION`] was written by a newer Kestrel and is
//! refused, never touched.
//!
//! Connection settings: WAL (readers never block the writer), `synchronous=FULL` (a commit is on
//! disk before it returns, so an ack is durable), foreign keys on, a busy timeout for the rare
//! checkpoint contention. Temporary storage in memory: every ingest job runs in a SAVEPOINT, whose
//! sub-journal would otherwise be a temp file written page by page (it was a fifth of the writer's
//! time); it holds only the pages one job touched. A larger page cache for the writer (the trace
//! rows and indexes it updates stay hot) and, for the readers, memory-mapped reads and a page
//! cache of their own.
//!
//! The bundled SQLite is compiled without its two process-wide locks (the shared page-cache LRU
//! of `SQLITE_ENABLE_MEMORY_MANAGEMENT`, and memory statistics): the repository's
//! `.cargo/config.toml` says why; a test here fails if a build lost them.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::side;
use crate::{Result, StoreError};

/// The migrations, in order: `MIGRATIONS[i]` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_search.sql"),
    include_str!("migrations/0003_ingest.sql"),
    include_str!("migrations/0004_query.sql"),
    include_str!("migrations/0005_max_record_id.sql"),
    include_str!("migrations/0006_sort_bounds.sql"),
    include_str!("migrations/0007_fts_merge.sql"),
    include_str!("migrations/0008_sort_indexes.sql"),
    include_str!("migrations/0009_record_hashes.sql"),
];

/// The version that added the search side tables: data written before gets them filled then.
const SEARCH_VERSION: i64 = 2;

/// The schema version this code writes and reads.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

const BUSY_TIMEOUT_MS: i64 = 5_000;

/// The writer's page cache, as SQLite takes it: negative = KiB (64 MiB).
const WRITER_CACHE_KIB: i64 = -65_536;

/// WAL pages (4 KiB) before the writer checkpoints, 64 MiB instead of SQLite's 4 MiB: under
/// sustained ingest the same index pages are written again and again, and a checkpoint copies
/// each page once however often it changed, so fewer, larger checkpoints copy less.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;

/// Each reader's page cache (negative = KiB: 16 MiB, allocated as pages are read). SQLite's
/// default of 2 MiB held too little of a 10M-item store's indexes: the pages beyond the memory map
/// were read again with a system call and a copy on every search (40% of a search's CPU);
/// 16 or 64 MiB took the ANDed example of bench 3 from 28-29 ms to 12-19 ms at p50 (`bench/README.md`,
/// section 3). A commit by the writer empties it (WAL), so under ingest it helps less.
const READER_CACHE_KIB: i64 = -16_384;

/// How much of the database file a reader maps (256 MiB of address space; pages are shared
/// with the OS page cache, not copied per connection).
const READER_MMAP_BYTES: i64 = 256 * 1024 * 1024;

pub(crate) fn internal(context: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("{context}: {err}"))
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Internal(format!("sqlite: {err}"))
    }
}

/// Opens the write connection, creating the file if needed, and migrates the schema.
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| internal(&format!("cannot open {}", path.display()), e))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "{} cannot use WAL journaling (got {mode})",
            path.display()
        )));
    }
    // Foreign keys are declared but not enforced on the writer: ingest inserts every child row
    // after its parent in the same transaction (by construction, tested by the store suite), and
    // enforcing them cost a parent lookup per side row on the one thread that bounds ingest.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY;",
    )?;
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "busy_timeout", BUSY_TIMEOUT_MS)?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Opens a read-only connection (after the writer has migrated the schema).
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| internal(&format!("cannot open {} for reading", path.display()), e))?;
    conn.pragma_update(None, "busy_timeout", BUSY_TIMEOUT_MS)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;")?;
    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
    conn.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
    Ok(conn)
}

/// The schema version stored in the file.
pub(crate) fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let current = user_version(conn)?;
    if current > LATEST_VERSION {
        return Err(StoreError::Internal(format!(
            "{} has schema version {current}, but this Kestrel knows versions up to {LATEST_VERSION}: \
             it was written by a newer Kestrel; upgrade Kestrel to open it (the file was not changed)",
            path.display()
        )));
    }
    if current == LATEST_VERSION {
        return Ok(());
    }
    // An upgrade of a large store takes seconds (3-6 s from version 5 to 6 at 10M items): say so.
    let started = std::time::Instant::now();
    if current > 0 {
        tracing::info!(
            from = current,
            to = LATEST_VERSION,
            path = %path.display(),
            "upgrading the store's schema; this can take a while on a large store"
        );
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let applied = (current..LATEST_VERSION).try_for_each(|v| -> Result<()> {
        let sql = usize::try_from(v)
            .ok()
            .and_then(|i| MIGRATIONS.get(i))
            .ok_or_else(|| StoreError::Internal(format!("no migration for version {v}")))?;
        conn.execute_batch(sql)
            .map_err(|e| internal(&format!("migration to version {}", v + 1), e))?;
        if v + 1 == SEARCH_VERSION {
            // Rows stored by version 1 have no side-table entries yet; the full-text index
            // needs nothing here (its watermark starts at 0, the indexer catches up).
            side::backfill(conn)?;
        }
        // PRAGMA takes no bound parameters; the value is our own integer, never user text.
        conn.execute_batch(&format!("PRAGMA user_version = {}", v + 1))?;
        Ok(())
    });
    match applied {
        Ok(()) => {
            conn.execute_batch("COMMIT")?;
            if current > 0 {
                tracing::info!(
                    version = LATEST_VERSION,
                    seconds = started.elapsed().as_secs_f64(),
                    "store schema upgraded"
                );
            }
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options `.cargo/config.toml` passes to the bundled SQLite are in effect. Without them
    /// every connection's page fetches share one mutex, and searches slow down 1.5-2x whenever
    /// the writer is busy (`bench/README.md`, section 3).
    #[test]
    fn sqlite_is_built_without_global_locks() {
        let conn = Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "SQLite was built with ENABLE_MEMORY_MANAGEMENT (one page-cache lock for all \
             connections): build through cargo in this repository, whose .cargo/config.toml \
             sets LIBSQLITE3_FLAGS; options: {options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "SQLite was built with memory statistics (a global lock per allocation); options: \
             {options:?}"
        );
    }
}
