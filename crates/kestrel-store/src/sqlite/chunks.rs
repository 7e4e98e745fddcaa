//! Item chunks: the items of one trace written by one ingest request, stored together as
//! zstd (level 1) of a JSON array of [`StoredItem`].
//!
//! Storing items in chunks instead of a row each is what keeps ingest near the disk's append
//! ceiling (see PERF-NOTES): one row and one index entry per trace per request. The price: an item
//! is read by decompressing its chunk, and the order of a trace's items is restored on read
//! (sorted by `(ts, id)`; ids are time-ordered UUIDv7, so items of one microsecond keep the order
//! they were logged in).

use caribou_model::api::StoredItem;
use rusqlite::{Connection, params};

use super::schema::internal;
use crate::Result;

const ZSTD_LEVEL: i32 = 1;

/// Writes one chunk of `items` (not empty) for the trace.
pub(crate) fn write(conn: &Connection, trace_rowid: i64, items: &[StoredItem]) -> Result<()> {
    let (Some(min_ts), Some(max_ts)) = (
        items.iter().map(|i| i.ts).min(),
        items.iter().map(|i| i.ts).max(),
    ) else {
        return Ok(());
    };
    let json = serde_json::to_vec(items).map_err(|e| internal("encoding items", e))?;
    let data =
        zstd::bulk::compress(&json, ZSTD_LEVEL).map_err(|e| internal("compressing items", e))?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO item_chunks(trace_rowid, n, min_ts, max_ts, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    insert.execute(params![
        trace_rowid,
        items.len() as i64,
        min_ts,
        max_ts,
        data
    ])?;
    Ok(())
}

/// The items of one chunk (`n` of them, as its row says).
pub(crate) fn decode(n: i64, data: &[u8]) -> Result<Vec<StoredItem>> {
    let json = zstd::stream::decode_all(data).map_err(|e| internal("decompressing items", e))?;
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
