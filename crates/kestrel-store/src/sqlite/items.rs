//! A page of one trace's items, decoding only the chunks the page needs.
//!
//! Items are ordered by `(ts, id)` across the trace's chunks, and chunks of different requests may
//! overlap in time, so the page `[offset, offset + limit)` is found like this: take chunks in order
//! of their smallest ts, decoding each; once at least `offset + limit` items are decoded, let `T`
//! be the ts of the `offset + limit`-th smallest of them; a chunk whose smallest ts is above `T`
//! holds only items after the page, so it and every later chunk are skipped. The first page of a
//! 30,000-item trace thus decodes a few chunks, not all of them; a page near the end still decodes
//! nearly everything (but answers only `limit` items).
//!
//! Chunks with `n = 0` (a request that carried records of the trace but no item) hold nothing and
//! are not read.

use caribou_model::api::StoredItem;
use rusqlite::Connection;

use super::chunks;
use crate::Result;

/// A chunk's place: its row id, item count and smallest ts.
struct ChunkRef {
    id: i64,
    n: i64,
    min_ts: i64,
}

/// Items `[offset, offset + limit)` of the trace in logged order, and the trace's item count.
pub(crate) fn page(
    conn: &Connection,
    trace_rowid: i64,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<StoredItem>)> {
    let mut select = conn.prepare_cached(
        "SELECT id, n, min_ts FROM item_chunks WHERE trace_rowid = ?1 AND n > 0 ORDER BY min_ts, id",
    )?;
    let refs = select
        .query_map([trace_rowid], |r| {
            Ok(ChunkRef {
                id: r.get(0)?,
                n: r.get(1)?,
                min_ts: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: u64 = refs.iter().map(|c| u64::try_from(c.n).unwrap_or(0)).sum();
    let end = offset.saturating_add(limit);
    if offset >= total || limit == 0 {
        return Ok((total, Vec::new()));
    }
    let end_index = usize::try_from(end).unwrap_or(usize::MAX);
    let mut data = conn.prepare_cached("SELECT n, data FROM item_chunks WHERE id = ?1")?;
    let mut items: Vec<StoredItem> = Vec::new();
    // The ts of the end-th item among those decoded so far (once there are that many).
    let mut bound: Option<i64> = None;
    for c in &refs {
        if bound.is_some_and(|t| c.min_ts > t) {
            break;
        }
        let (n, blob): (i64, Vec<u8>) = data.query_row([c.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        items.append(&mut chunks::decode(n, &blob)?);
        if items.len() >= end_index {
            items.sort_unstable_by_key(|i| (i.ts, i.id));
            items.truncate(end_index);
            bound = items.last().map(|i| i.ts);
        }
    }
    items.sort_unstable_by_key(|i| (i.ts, i.id));
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    Ok((
        total,
        items
            .into_iter()
            .skip(skip)
            .take(end_index - skip.min(end_index))
            .collect(),
    ))
}
