//! Item chunks: the items of one trace written by one ingest request, stored together as
//! zstd (level 1) of a JSON array of [`StoredItem`], with the ids of all that request's records
//! of the trace (the dedup set; see migration 0003) and their content hashes in the same order
//! (8 bytes each, little-endian; `NULL` in chunks written before migration 0009, whose records are
//! then taken as retries whatever their content). A request with no item for a trace still
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
use std::collections::HashMap;

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::prepare::RecordKey;
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
    compress(&json)
}

/// Compresses the JSON array of a chunk's items.
pub(crate) fn compress(json: &[u8]) -> Result<Vec<u8>> {
    COMPRESSOR
        .with_borrow_mut(|slot| {
            let compressor = match slot {
                Some(c) => c,
                None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
            };
            compressor.compress(json)
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
/// (`data`, made here when `None`), and the ids and content hashes of every record of the request
/// for that trace. A chunk is written even without items: its ids are what later retries are
/// checked against. Returns the chunk's id.
pub(crate) fn write(
    conn: &Connection,
    trace_rowid: i64,
    items: &[StoredItem],
    data: Option<Vec<u8>>,
    keys: &[RecordKey],
) -> Result<i64> {
    let min_ts = items.iter().map(|i| i.ts).min().unwrap_or(0);
    let max_ts = items.iter().map(|i| i.ts).max().unwrap_or(0);
    let data = match data {
        Some(data) => data,
        None if items.is_empty() => Vec::new(),
        None => encode(items)?,
    };
    let mut ids = Vec::with_capacity(keys.len() * 16);
    let mut hashes = Vec::with_capacity(keys.len() * 8);
    for key in keys {
        ids.extend_from_slice(key.id.as_bytes());
        hashes.extend_from_slice(&key.hash.to_le_bytes());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO item_chunks(trace_rowid, n, min_ts, max_ts, data, record_ids, record_hashes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    insert.execute(params![
        trace_rowid,
        items.len() as i64,
        min_ts,
        max_ts,
        data,
        ids,
        hashes
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The record ids stored with a trace's chunks, each with its content hash when its chunk keeps
/// one, and whether some of its chunks predate the ids (schema version 2: their ids are in the
/// `record_ids` table instead).
pub(crate) fn record_ids(
    conn: &Connection,
    trace_rowid: i64,
) -> Result<(HashMap<Uuid, Option<u64>>, bool)> {
    let mut select = conn.prepare_cached(
        "SELECT record_ids, record_hashes FROM item_chunks WHERE trace_rowid = ?1",
    )?;
    let mut rows = select.query([trace_rowid])?;
    let mut ids = HashMap::new();
    let mut legacy = false;
    while let Some(row) = rows.next()? {
        let blob = |i: usize| {
            row.get_ref(i)
                .and_then(|v| Ok(v.as_blob_or_null()?))
                .map_err(|e| internal("reading record ids", e))
        };
        let Some(id_blob) = blob(0)? else {
            legacy = true;
            continue;
        };
        let hashes = blob(1)?.filter(|h| h.len() * 2 == id_blob.len());
        for (i, raw) in id_blob.chunks_exact(16).enumerate() {
            let hash = hashes
                .and_then(|h| h.get(i * 8..i * 8 + 8))
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes);
            if let Ok(id) = Uuid::from_slice(raw) {
                ids.insert(id, hash);
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
