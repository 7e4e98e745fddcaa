//! Item chunks: the items of one trace written by one ingest request, stored together as
//! zstd (level 1) of a JSON array of [`StoredItem`], with the ids of all that request's records
//! of the trace (the dedup set; see migration 0003). A request with no item for a trace still
//! writes a chunk (`n = 0`, empty `data`) to keep its ids.
//!
//! Storing items in chunks instead of a row each is what keeps ingest near the disk's append
//! ceiling (see PERF-NOTES): one row and one index entry per trace per request. The price: an item
//! is read by decompressing its chunk, and the order of a trace's items is restored on read
//! (sorted by `(ts, id)`; ids are time-ordered UUIDv7, so items of one microsecond keep the order
//! they were logged in). A whole trace is answered from its chunks' JSON without parsing it
//! (`trace_json`); a page of items decodes only the chunks it needs (`items`).

use caribou_model::api::StoredItem;
use std::cell::RefCell;
use std::collections::HashSet;

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::schema::internal;
use crate::Result;

const ZSTD_LEVEL: i32 = 1;

/// Largest decompressed chunk accepted (a corrupt size field must not allocate without bound).
const MAX_CHUNK_JSON: u64 = 1 << 30;

thread_local! {
    // zstd contexts, one per thread, reused: making one per chunk (a few KiB of JSON) cost more
    // than the compression itself.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Encodes items for storage: zstd of their JSON array (written by `caribou_model::json`, the
/// same bytes as `serde_json` with a faster string escaper).
pub(crate) fn encode(items: &[StoredItem]) -> Result<Vec<u8>> {
    let mut json = Vec::new();
    caribou_model::json::write(&mut json, items).map_err(|e| internal("encoding items", e))?;
    COMPRESSOR
        .with_borrow_mut(|slot| {
            let compressor = match slot {
                Some(c) => c,
                None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
            };
            compressor.compress(&json)
        })
        .map_err(|e| internal("compressing items", e))
}

/// The JSON held by a chunk's `data`.
pub(crate) fn decompress(data: &[u8]) -> Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(data)
        .map_err(|e| internal("decompressing items", format!("not a zstd frame: {e:?}")))?;
    match size {
        Some(size) if size <= MAX_CHUNK_JSON => DECOMPRESSOR
            .with_borrow_mut(|slot| {
                let decompressor = match slot {
                    Some(d) => d,
                    None => slot.insert(zstd::bulk::Decompressor::new()?),
                };
                decompressor.decompress(data, size as usize)
            })
            .map_err(|e| internal("decompressing items", e)),
        // Frames written by streaming encoders may not state their size.
        _ => zstd::stream::decode_all(data).map_err(|e| internal("decompressing items", e)),
    }
}

/// Writes the chunk of one trace for one request: its `items` (possibly none), their encoding
/// (`data`, made here when `None`), and the ids of every record of the request for that trace.
/// A chunk is written even without items: its ids are what later retries are checked against.
/// Returns the chunk's id.
pub(crate) fn write(
    conn: &Connection,
    trace_rowid: i64,
    items: &[StoredItem],
    data: Option<Vec<u8>>,
    record_ids: &[Uuid],
) -> Result<i64> {
    let min_ts = items.iter().map(|i| i.ts).min().unwrap_or(0);
    let max_ts = items.iter().map(|i| i.ts).max().unwrap_or(0);
    let data = match data {
        Some(data) => data,
        None if items.is_empty() => Vec::new(),
        None => encode(items)?,
    };
    let mut ids = Vec::with_capacity(record_ids.len() * 16);
    for id in record_ids {
        ids.extend_from_slice(id.as_bytes());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO item_chunks(trace_rowid, n, min_ts, max_ts, data, record_ids)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    insert.execute(params![
        trace_rowid,
        items.len() as i64,
        min_ts,
        max_ts,
        data,
        ids
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The record ids stored with a trace's chunks, and whether some of its chunks predate them
/// (schema version 2: their ids are in the `record_ids` table instead).
pub(crate) fn record_ids(conn: &Connection, trace_rowid: i64) -> Result<(HashSet<Uuid>, bool)> {
    let mut select =
        conn.prepare_cached("SELECT record_ids FROM item_chunks WHERE trace_rowid = ?1")?;
    let mut rows = select.query([trace_rowid])?;
    let mut ids = HashSet::new();
    let mut legacy = false;
    while let Some(row) = rows.next()? {
        let Some(blob) = row
            .get_ref(0)?
            .as_blob_or_null()
            .map_err(|e| internal("reading record ids", e))?
        else {
            legacy = true;
            continue;
        };
        for raw in blob.chunks_exact(16) {
            if let Ok(id) = Uuid::from_slice(raw) {
                ids.insert(id);
            }
        }
    }
    Ok((ids, legacy))
}

/// The items of one chunk (`n` of them, as its row says).
pub(crate) fn decode(n: i64, data: &[u8]) -> Result<Vec<StoredItem>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let json = decompress(data)?;
    let chunk: Vec<StoredItem> =
        serde_json::from_slice(&json).map_err(|e| internal("decoding items", e))?;
    if chunk.len() as i64 != n {
        return Err(internal(
            "reading items",
            format!("chunk holds {} items, expected {n}", chunk.len()),
        ));
    }
    Ok(chunk)
}

/// All items of a trace, in logged order.
pub(crate) fn read_all(conn: &Connection, trace_rowid: i64) -> Result<Vec<StoredItem>> {
    let mut select =
        conn.prepare_cached("SELECT n, data FROM item_chunks WHERE trace_rowid = ?1 ORDER BY id")?;
    let mut rows = select.query([trace_rowid])?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        let data: Vec<u8> = row.get(1)?;
        items.append(&mut decode(row.get(0)?, &data)?);
    }
    items.sort_by_key(|i| (i.ts, i.id));
    Ok(items)
}
