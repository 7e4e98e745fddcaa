//! `chunk_bounds` and `trace_bounds` (migration 0006): per block of ids (chunk ids, trace rowids),
//! an upper bound of the sort time of the traces up to that block, so a newest-first walk in
//! descending id order (`lead_walk`) knows when no smaller id can bring a newer trace.
//!
//! Invariant, for every committed state, for both tables: for each id `i` (a chunk holding items
//! of trace `t`, or the trace `t` itself), the first row with `block >= i >> BLOCK_SHIFT` exists
//! and its `ts_bound >= t.sort_ts`; bounds never decrease from one block to the next. Ingest keeps
//! it in the same transaction as the rows it describes:
//! - new ids (chunks with items, new traces): the blocks of the request's new ids are raised to
//!   the greatest sort time of their traces, and to the bound of the row before them;
//! - a trace's sort time grows only while it has neither opening nor item (it is then its
//!   earliest record's time; the first opening or item sets it, and from then on it can only
//!   fall): every block of `trace_bounds` from the trace's rowid's on is raised. A chunk with
//!   items is written when its trace's sort time has stopped growing, so `chunk_bounds` needs no
//!   raise; chunks without items (only record ids) are not covered, and are never in the
//!   full-text index the walk reads.
//!
//! Bounds are only raised, never lowered (a trace whose sort time falls keeps the higher bound):
//! a high bound costs a walk more reading, never a wrong answer.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;

/// Ids per block: 1,024.
pub(crate) const BLOCK_SHIFT: u32 = 10;

/// Which ids a bounds table covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ids {
    Chunks,
    Traces,
}

impl Ids {
    fn table(self) -> &'static str {
        match self {
            Ids::Chunks => "chunk_bounds",
            Ids::Traces => "trace_bounds",
        }
    }
}

/// What one ingest request changes in one table, applied at its end by [`Pending::write`].
#[derive(Debug)]
pub(crate) struct Pending {
    ids: Ids,
    /// Smallest and greatest new id, and the greatest sort time of their traces.
    added: Option<(i64, i64, i64)>,
    /// (first id of a trace whose sort time grew, its new sort time).
    grown: Vec<(i64, i64)>,
}

impl Pending {
    pub(crate) fn new(ids: Ids) -> Pending {
        Pending {
            ids,
            added: None,
            grown: Vec::new(),
        }
    }

    /// A new id `id` of a trace whose sort time is `sort_ts`.
    pub(crate) fn added(&mut self, id: i64, sort_ts: i64) {
        self.added = Some(match self.added {
            None => (id, id, sort_ts),
            Some((lo, hi, ts)) => (lo.min(id), hi.max(id), ts.max(sort_ts)),
        });
    }

    /// The trace of id `first` now sorts at `sort_ts`, later than before.
    pub(crate) fn grown(&mut self, first: i64, sort_ts: i64) {
        self.grown.push((first, sort_ts));
    }

    /// Raises the bounds (see the module docs).
    pub(crate) fn write(self, conn: &Connection) -> Result<()> {
        let table = self.ids.table();
        for (first, sort_ts) in self.grown {
            conn.prepare_cached(&format!(
                "UPDATE {table} SET ts_bound = ?2 WHERE block >= ?1 AND ts_bound < ?2"
            ))?
            .execute(params![first >> BLOCK_SHIFT, sort_ts])?;
        }
        let Some((lo, hi, ts)) = self.added else {
            return Ok(());
        };
        let (lo, hi) = (lo >> BLOCK_SHIFT, hi >> BLOCK_SHIFT);
        let before: Option<i64> = conn
            .prepare_cached(&format!(
                "SELECT ts_bound FROM {table} WHERE block < ?1 ORDER BY block DESC LIMIT 1"
            ))?
            .query_row([lo], |r| r.get(0))
            .optional()?;
        let ts = before.map_or(ts, |b| b.max(ts));
        let mut raise = conn.prepare_cached(&format!(
            "INSERT INTO {table}(block, ts_bound) VALUES (?1, ?2)
             ON CONFLICT(block) DO UPDATE SET ts_bound = max(ts_bound, excluded.ts_bound)"
        ))?;
        for block in lo..=hi {
            raise.execute(params![block, ts])?;
        }
        Ok(())
    }
}

/// An upper bound of the sort time of every trace with an id (of `ids`) below `id`; `None` when
/// no row covers those ids (there are none).
pub(crate) fn below(conn: &Connection, ids: Ids, id: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT ts_bound FROM {} WHERE block >= ?1 ORDER BY block LIMIT 1",
            ids.table()
        ))?
        .query_row([(id - 1) >> BLOCK_SHIFT], |r| r.get(0))
        .optional()?)
}
