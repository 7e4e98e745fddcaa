//! The full-text indexer: puts the text of item chunks into the FTS5 table `chunk_text`, outside
//! the ingest transactions.
//!
//! Why not at ingest: updating FTS5 inside the ack path caps ingest near 15k items/s
//! (PERF-NOTES), far under what the chunked store takes. So an acknowledged chunk is stored first
//! and indexed a little later by the same writer thread, which runs [`index_slice`] in its own
//! transaction when no write is waiting, and a short, time-boxed slice between write groups under
//! sustained load (so the lag stays bounded while ingest keeps most of the writer's time).
//!
//! Invariants:
//! - `search_state.indexed_chunk` is the watermark: every chunk with an id at or under it is
//!   indexed, none above it is. The rows and the watermark change in one transaction, so a crash
//!   never indexes a chunk twice or skips one; indexing resumes from the watermark at the next
//!   start.
//! - Chunk ids only grow: one writer assigns them in commit order and chunks are never deleted,
//!   so no chunk can appear under the watermark later.
//!
//! Segments: each slice commits one FTS5 segment. FTS5 merges them as it writes (its
//! `automerge`, set to 8 by migration 0007 so that less merging runs between ingest groups), and
//! [`merge_slice`] merges the rest in the writer's idle time, a few milliseconds at a time.
//!
//! What is indexed, as plain text (one FTS row per chunk, rowid = chunk id): message content
//! (strings and text parts), tool calls (names and arguments), tool names, arguments, results and
//! errors, event names and data. JSON is reduced to its string and number leaves (object keys and
//! `"type"` tags left out). Grades are not indexed.

use std::time::{Duration, Instant};

use caribou_model::Item;
use caribou_model::api::{SearchIndexStatus, StoredItem};
use rusqlite::{Connection, params};
use serde_json::Value;

use super::schema::internal;
use super::text_cache::TextCache;
use super::{chunks, values};
use crate::Result;

/// Chunks indexed per transaction when the writer is idle.
pub(crate) const IDLE_SLICE: usize = 256;

/// The plain text of one item (empty for grades).
fn item_text(item: &Item, out: &mut String) {
    match item {
        Item::Message(m) => {
            if let Some(c) = &m.content {
                json_text(c, out);
            }
            if let Some(c) = &m.tool_calls {
                json_text(c, out);
            }
            if let Some(name) = &m.name {
                push(out, name);
            }
        }
        Item::ToolExecution(t) => {
            push(out, &t.name);
            for v in [&t.arguments, &t.result].into_iter().flatten() {
                json_text(v, out);
            }
            if let Some(e) = &t.error {
                push(out, e);
            }
        }
        Item::Event(e) => {
            push(out, &e.name);
            if let Some(d) = &e.data {
                json_text(d, out);
            }
        }
        Item::Grade(_) => {}
    }
}

fn push(out: &mut String, text: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(text);
}

/// The string and number leaves of a JSON value, in order; `"type"` tags of content parts are
/// left out (they would make every message match `text`).
fn json_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => push(out, s),
        Value::Number(n) => push(out, &n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| json_text(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if k != "type" {
                    json_text(v, out);
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// The text of a chunk's items.
pub(crate) fn chunk_text(items: &[StoredItem]) -> String {
    let mut out = String::new();
    for stored in items {
        item_text(&stored.item, &mut out);
    }
    out
}

/// Indexes chunks above the watermark, in id order, in one transaction: at most `max_chunks`, and
/// stops early once `budget` has passed (at least one chunk is indexed). Returns how many were
/// indexed; fewer than `max_chunks` (without hitting the budget) means the index caught up.
pub(crate) fn index_slice(
    conn: &Connection,
    max_chunks: usize,
    budget: Option<Duration>,
    texts: Option<&TextCache>,
) -> Result<usize> {
    let started = Instant::now();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> Result<(usize, i64)> {
        let mark: i64 = conn.query_row(
            "SELECT indexed_chunk FROM search_state WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        let mut select = conn.prepare_cached(
            "SELECT id, n, data FROM item_chunks WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let mut insert =
            conn.prepare_cached("INSERT INTO chunk_text(rowid, body) VALUES (?1, ?2)")?;
        let mut rows = select.query(params![mark, values::int(max_chunks as u64)])?;
        let mut done = 0;
        let mut last = mark;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let text = match texts.and_then(|t| t.take(id)) {
                Some(text) => text,
                None => {
                    let data = row
                        .get_ref(2)?
                        .as_blob()
                        .map_err(|e| internal("reading a chunk", e))?;
                    chunk_text(&chunks::decode(row.get(1)?, data)?)
                }
            };
            if !text.is_empty() {
                insert.execute(params![id, text])?;
            }
            last = id;
            done += 1;
            if budget.is_some_and(|b| started.elapsed() >= b) {
                break;
            }
        }
        if last != mark {
            conn.execute(
                "UPDATE search_state SET indexed_chunk = ?1 WHERE id = 1",
                [last],
            )?;
        }
        Ok((done, last))
    })();
    match result {
        Ok((done, last)) => {
            conn.execute_batch("COMMIT")?;
            if let Some(texts) = texts {
                texts.forget_through(last);
            }
            Ok(done)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Leaf pages one [`merge_slice`] writes at most: a few milliseconds of work, so a write that
/// arrives meanwhile waits little.
const MERGE_PAGES: i64 = 32;

/// Merges segments of the full-text index, a bounded slice of work, for the writer's idle time:
/// levels holding at least 4 segments (FTS5's `usermerge`) are merged, which ingest leaves for
/// later (migration 0007 raised `automerge` to 8). Returns 1 if it merged something, 0 when
/// there is nothing left to merge. Runs in its own (implicit) transaction.
pub(crate) fn merge_slice(conn: &Connection) -> Result<usize> {
    let changes = || conn.query_row("SELECT total_changes()", [], |r| r.get::<_, i64>(0));
    let before = changes()?;
    conn.execute(
        "INSERT INTO chunk_text(chunk_text, rank) VALUES ('merge', ?1)",
        [MERGE_PAGES],
    )?;
    // FTS5's documented test: the 'merge' command found nothing to do if it changed fewer than
    // two rows.
    Ok(usize::from(changes()? - before >= 2))
}

/// Chunks and items not yet indexed.
pub(crate) fn status(conn: &Connection) -> Result<SearchIndexStatus> {
    let mut select = conn.prepare_cached(
        "SELECT COUNT(*), TOTAL(n) FROM item_chunks
         WHERE id > (SELECT indexed_chunk FROM search_state WHERE id = 1)",
    )?;
    let (chunks, items): (i64, f64) = select.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(SearchIndexStatus {
        unindexed_chunks: values::count(chunks),
        // A count of items held as a float by TOTAL(); exact far beyond any real figure.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        unindexed_items: items as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caribou_model::{Event, Message, ToolExecution};
    use serde_json::json;

    fn stored(item: Item) -> StoredItem {
        StoredItem {
            id: caribou_model::new_record_id(),
            ts: 0,
            turn_id: None,
            item,
        }
    }

    #[test]
    fn text_of_items() {
        let items = [
            stored(Item::Message(Message {
                role: "assistant".into(),
                content: Some(json!([{"type": "text", "text": "the call timed out"}])),
                tool_calls: Some(
                    json!([{"function": {"name": "search_web", "arguments": "{\"q\": \"rust\"}"}}]),
                ),
                ..Message::default()
            })),
            stored(Item::ToolExecution(ToolExecution {
                name: "lookup".into(),
                arguments: Some(json!({"city": "Paris", "n": 3})),
                result: Some(json!("sunny")),
                ..ToolExecution::default()
            })),
            stored(Item::Event(Event {
                name: "guardrail".into(),
                data: Some(json!({"rule": "pii"})),
                level: "warn".into(),
            })),
        ];
        let text = chunk_text(&items);
        for word in [
            "timed out",
            "search_web",
            "rust",
            "lookup",
            "Paris",
            "3",
            "sunny",
            "guardrail",
            "pii",
        ] {
            assert!(text.contains(word), "{word:?} missing from {text:?}");
        }
        assert!(!text.contains("text\n"), "type tags are left out: {text:?}");
        assert!(!text.contains("assistant"));
    }

    /// The index as the store makes it: migration 0002's table with 0007's setting.
    fn index_with_segments(segments: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE chunk_text USING fts5(body, content = '',
               tokenize = 'unicode61 remove_diacritics 2');",
        )
        .unwrap();
        conn.execute_batch(include_str!("migrations/0007_fts_merge.sql"))
            .unwrap();
        // One segment per transaction, as the indexer's slices write them.
        for i in 0..segments {
            let rowid = i64::try_from(i).unwrap() + 1;
            let body = format!("caribou herd {i} crossed the river, and the call timed out");
            conn.execute(
                "INSERT INTO chunk_text(rowid, body) VALUES (?1, ?2)",
                params![rowid, body],
            )
            .unwrap();
        }
        conn
    }

    fn matches(conn: &Connection, query: &str) -> Vec<i64> {
        let mut s = conn
            .prepare("SELECT rowid FROM chunk_text WHERE chunk_text MATCH ?1 ORDER BY rowid")
            .unwrap();
        s.query_map([query], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Segments of the index (each has at least one row in the `_idx` shadow table).
    fn segments(conn: &Connection) -> i64 {
        conn.query_row(
            "SELECT count(DISTINCT segid) FROM chunk_text_idx",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn idle_merges_find_the_segments_ingest_left_and_stop_when_done() {
        // 6 segments on one level: under `automerge` 8, ingest left them unmerged.
        let conn = index_with_segments(6);
        let before = (
            matches(&conn, "\"timed out\""),
            matches(&conn, "herd AND 3"),
        );
        assert_eq!(before.0.len(), 6);
        assert_eq!(before.1, [4]);
        assert_eq!(segments(&conn), 6);
        let automerge: i64 = conn
            .query_row(
                "SELECT v FROM chunk_text_config WHERE k = 'automerge'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            automerge, 8,
            "migration 0007's setting is kept in the index"
        );
        let mut slices = 0;
        while merge_slice(&conn).unwrap() == 1 {
            slices += 1;
            assert!(slices < 100, "merging never finished");
        }
        assert!(slices >= 1, "a level of 6 segments was not merged");
        assert_eq!(merge_slice(&conn).unwrap(), 0, "nothing is left to merge");
        assert_eq!(segments(&conn), 1);
        // The same answers from the merged index, and new rows are still indexed.
        assert_eq!(
            (
                matches(&conn, "\"timed out\""),
                matches(&conn, "herd AND 3")
            ),
            before
        );
        conn.execute(
            "INSERT INTO chunk_text(rowid, body) VALUES (100, 'a late caribou')",
            [],
        )
        .unwrap();
        assert_eq!(matches(&conn, "late"), [100]);
    }

    #[test]
    fn a_level_under_four_segments_is_left_alone() {
        let conn = index_with_segments(3);
        assert_eq!(merge_slice(&conn).unwrap(), 0);
        assert_eq!(segments(&conn), 3);
        assert_eq!(matches(&conn, "caribou").len(), 3);
    }
}
