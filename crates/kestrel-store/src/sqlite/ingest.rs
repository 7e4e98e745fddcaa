//! Ingest, second half: applying a prepared batch (see `prepare`) inside the writer's transaction.
//!
//! Per trace of the request: the row is looked up once. A new trace needs no dedup (none of its
//! records can be stored yet, and repeats inside the batch were dropped by `prepare`); for a
//! trace already stored, unless every incoming id is above the greatest id stored for it (ids are
//! UUIDv7: new records are, retries are not), the ids kept with its chunks are read and the
//! records already there are dropped and counted as duplicates. The rest are applied to the row in memory (`trace_row`), the
//! row is written with one statement, the request's chunk (its items, possibly none, and all its
//! record ids) with another, then one row per new side fact (turn, grade, tag, metadata key, tool,
//! model). Run steps whose traces changed are marked in `step_dirty` once per request, and the
//! sort-time bounds of the request's chunk ids and new traces raised once (`sort_bounds`).
//!
//! Statements per new trace of ~12 items: about ten (was ~28 when every record id had its own
//! row). The full-text index is not touched here: the writer fills it later (`indexer`).
//!
//! Dedup is per trace: a record id is a duplicate when a record with that id was stored for the
//! same trace with the same content hash (see `prepare`), a conflict when with another (ids are
//! UUIDs made by the SDK, so two traces never share one in practice; one reused across traces
//! of different batches is not detected).

use std::collections::{BTreeSet, HashSet};

use caribou_model::api::{IngestResponse, StoredItem};
use caribou_model::validate::excerpt;
use caribou_model::{Batch, Item, Record, now_us};
use rusqlite::{Connection, OptionalExtension, params};

use super::chunks;
use super::prepare::{PreparedBatch, PreparedTrace, prepare, reused_id};
use super::sort_bounds::{self, Ids};
use super::trace_row::{Filing, TraceRow};
use crate::Result;

/// What storing a batch left: the answer, and what the caller handles once the transaction
/// committed (off the writer thread).
#[derive(Debug, Default)]
pub(crate) struct Ingested {
    pub response: IngestResponse,
    /// (chunk id, text) for the full-text indexer's cache (`text_cache`).
    pub texts: Vec<(i64, String)>,
    /// The batch's traces, spent: freeing them is left to the caller, not the writer.
    pub spent: Vec<PreparedTrace>,
}

/// Stores a prepared batch; answers how many records were new and how many were seen before.
pub(crate) fn ingest(conn: &Connection, batch: PreparedBatch) -> Result<Ingested> {
    let mut out = Ingested::default();
    let response = &mut out.response;
    response.duplicates = batch.duplicates;
    let mut filing = Filing::default();
    let mut legacy_ids = None;
    let mut steps = BTreeSet::new();
    let mut chunk_bounds = sort_bounds::Pending::new(Ids::Chunks);
    let mut trace_bounds = sort_bounds::Pending::new(Ids::Traces);
    for mut trace in batch.traces {
        let row = TraceRow::load(conn, &trace.trace_id)?;
        let sort_before = row.as_ref().map(TraceRow::sort_ts);
        let mut legacy = false;
        if let Some(stored) = &row {
            // Ids all above the trace's greatest: nothing of this request can be stored already.
            let all_newer = stored
                .max_record_id
                .is_some_and(|max| trace.keys.iter().all(|k| k.id > max));
            if let (false, Some(id)) = (all_newer, stored.id) {
                let (dropped, old) = drop_stored(conn, id, &mut trace, &mut legacy_ids)?;
                response.duplicates += dropped as u64;
                legacy = old;
            }
        }
        let Some(first_ts) = trace.first_ts() else {
            out.spent.push(trace);
            continue;
        };
        response.accepted += trace.keys.len() as u64;
        let mut row = row.unwrap_or_else(|| TraceRow::new(&trace.trace_id, first_ts));
        // A trace with ids in `record_ids` keeps no maximum: those ids are not in it, so every
        // request of it is checked in full.
        if !legacy {
            row.max_record_id = row.max_record_id.max(trace.keys.iter().map(|k| k.id).max());
        }
        apply(conn, &mut filing, &mut row, &trace)?;
        let id = row.save(conn)?;
        let chunk = chunks::write(conn, id, &trace.items, trace.chunk.take(), &trace.keys)?;
        let sort_ts = row.sort_ts();
        if !trace.items.is_empty() {
            chunk_bounds.added(chunk, sort_ts);
        }
        match sort_before {
            None => trace_bounds.added(id, sort_ts),
            Some(before) if sort_ts > before => trace_bounds.grown(id, sort_ts),
            Some(_) => {}
        }
        if let Some(text) = trace.text.take() {
            out.texts.push((chunk, text));
        }
        if let (Some(run), Some(step)) = (row.run_rowid, row.step) {
            steps.insert((run, step));
        }
        out.spent.push(trace);
    }
    chunk_bounds.write(conn)?;
    trace_bounds.write(conn)?;
    if !steps.is_empty() {
        let mut mark = conn
            .prepare_cached("INSERT OR IGNORE INTO step_dirty(run_rowid, step) VALUES (?1, ?2)")?;
        for (run, step) in steps {
            mark.execute(params![run, step])?;
        }
    }
    Ok(out)
}

/// Drops from `trace` the records already stored for the stored trace `trace_rowid`; returns how
/// many, and whether the trace may have ids in the `record_ids` table. A stored id whose content
/// hash differs from the one sent is a [`crate::StoreError::Conflict`]. `legacy_ids` caches, per
/// request, whether the `record_ids` table of schema version 2 holds anything (only then are
/// ids also looked up there).
fn drop_stored(
    conn: &Connection,
    trace_rowid: i64,
    trace: &mut PreparedTrace,
    legacy_ids: &mut Option<bool>,
) -> Result<(usize, bool)> {
    let (stored, some_legacy) = chunks::record_ids(conn, trace_rowid)?;
    let legacy = if some_legacy || stored.is_empty() {
        match *legacy_ids {
            Some(any) => any,
            None => {
                let any = conn
                    .query_row("SELECT 1 FROM record_ids LIMIT 1", [], |_| Ok(()))
                    .optional()?
                    .is_some();
                *legacy_ids = Some(any);
                any
            }
        }
    } else {
        false
    };
    let mut in_legacy = HashSet::new();
    if legacy {
        let mut select = conn.prepare_cached("SELECT 1 FROM record_ids WHERE id = ?1")?;
        for key in &trace.keys {
            if select.exists([key.id.as_bytes().as_slice()])? {
                in_legacy.insert(key.id);
            }
        }
    }
    for key in &trace.keys {
        if let Some(Some(hash)) = stored.get(&key.id)
            && *hash != key.hash
        {
            return Err(reused_id(
                key.id,
                &format!("again for trace {}", excerpt(&trace.trace_id)),
            ));
        }
    }
    let dropped = trace.retain(|k| !stored.contains_key(&k.id) && !in_legacy.contains(&k.id));
    Ok((dropped, legacy))
}

/// Applies the trace's records to its row, in memory (filing may look up or create a project).
fn apply(
    conn: &Connection,
    filing: &mut Filing,
    row: &mut TraceRow,
    trace: &PreparedTrace,
) -> Result<()> {
    for record in &trace.records {
        row.saw_ts(record.ts());
        match record {
            Record::TraceOpen(open) => row.open(conn, filing, open)?,
            Record::TraceClose(close) => row.close(close),
            Record::Status(s) => row.offer_status(s.status, s.ts),
            Record::Error(e) => row.offer_error(&e.message, e.traceback.as_deref(), e.ts),
            Record::Metadata(m) => row.merge_metadata(&m.metadata, m.ts)?,
            Record::Tags(t) => row.tags(&t.tags),
            // `prepare` moved the items out.
            Record::Item(_) => {}
        }
    }
    for item in &trace.items {
        row.saw_ts(item.ts);
        row.item(item)?;
    }
    Ok(())
}

/// The rowid of an existing trace.
pub(crate) fn trace_rowid(conn: &Connection, trace_id: &str) -> Result<Option<i64>> {
    let mut select = conn.prepare_cached("SELECT id FROM traces WHERE trace_id = ?1")?;
    Ok(select.query_row([trace_id], |r| r.get(0)).optional()?)
}

/// Grades an existing trace after the fact: a grade item with a server-made id and time, stored like
/// an ingested one (a chunk, the grades table, the item count).
pub(crate) fn add_grade(
    conn: &Connection,
    trace_id: &str,
    grade: caribou_model::api::AddGrade,
) -> Result<StoredItem> {
    if trace_rowid(conn, trace_id)?.is_none() {
        return Err(crate::StoreError::NotFound(format!(
            "trace {trace_id:?} not found"
        )));
    }
    let record = caribou_model::ItemRecord {
        id: caribou_model::new_record_id(),
        trace_id: trace_id.to_owned(),
        ts: now_us(),
        turn_id: None,
        item: Item::Grade(caribou_model::Grade {
            name: grade.name,
            value: grade.value,
            comment: grade.comment,
            grader: grade.grader,
            metadata: grade.metadata,
        }),
    };
    let stored = StoredItem {
        id: record.id,
        ts: record.ts,
        turn_id: None,
        item: record.item.clone(),
    };
    let batch = Batch {
        records: vec![Record::Item(record)],
    };
    ingest(conn, prepare(batch)?)?;
    Ok(stored)
}
