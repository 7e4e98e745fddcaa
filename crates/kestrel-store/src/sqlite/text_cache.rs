//! Texts of freshly ingested chunks, kept in memory until the full-text indexer takes them.
//!
//! The indexer runs on the writer thread, the store's bottleneck. Reading a chunk back to index
//! it (decompress, parse the JSON, walk the items) cost about a third of its time; the text is
//! already at hand when the batch is prepared, on the request's own thread. So `prepare` makes it,
//! the ingest caller puts it here once the chunk is committed, and the indexer takes it instead of
//! decoding the chunk.
//!
//! Invariants and limits:
//! - An entry is put only after its chunk's transaction committed: a rolled-back chunk id (which
//!   SQLite may hand out again) never gets a text.
//! - Only a cache: a chunk without an entry (cache full, server restarted, the indexer got there
//!   first) is decoded from disk as before. Entries at or under the indexer's watermark are dropped.
//! - Bounded by [`TextCache::new`]'s byte cap; past it new texts are not kept.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Texts {
    by_chunk: BTreeMap<i64, String>,
    bytes: usize,
}

/// Chunk id → the chunk's plain text, for the indexer.
#[derive(Debug)]
pub(crate) struct TextCache {
    cap_bytes: usize,
    texts: Mutex<Texts>,
}

impl TextCache {
    pub(crate) fn new(cap_bytes: usize) -> TextCache {
        TextCache {
            cap_bytes,
            texts: Mutex::new(Texts::default()),
        }
    }

    /// Keeps the texts of committed chunks, as far as the cap allows.
    pub(crate) fn put(&self, entries: Vec<(i64, String)>) {
        let Ok(mut t) = self.texts.lock() else {
            return;
        };
        for (chunk, text) in entries {
            if t.bytes + text.len() > self.cap_bytes {
                break;
            }
            t.bytes += text.len();
            if let Some(old) = t.by_chunk.insert(chunk, text) {
                t.bytes -= old.len();
            }
        }
    }

    /// The text of `chunk`, removed from the cache.
    pub(crate) fn take(&self, chunk: i64) -> Option<String> {
        let mut t = self.texts.lock().ok()?;
        let text = t.by_chunk.remove(&chunk)?;
        t.bytes -= text.len();
        Some(text)
    }

    /// Drops the texts of chunks at or under `watermark` (already indexed).
    pub(crate) fn forget_through(&self, watermark: i64) {
        let Ok(mut t) = self.texts.lock() else {
            return;
        };
        if t.by_chunk
            .first_key_value()
            .is_none_or(|(k, _)| *k > watermark)
        {
            return;
        }
        let keep = t.by_chunk.split_off(&(watermark + 1));
        let dropped = std::mem::replace(&mut t.by_chunk, keep);
        t.bytes -= dropped.values().map(String::len).sum::<usize>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_forgets_indexed_chunks() {
        let cache = TextCache::new(10);
        cache.put(vec![
            (1, "abcd".into()),
            (2, "efgh".into()),
            (3, "ijkl".into()),
        ]);
        assert_eq!(cache.take(3), None, "over the cap: not kept");
        assert_eq!(cache.take(2).as_deref(), Some("efgh"));
        assert_eq!(cache.take(2), None, "taken once");
        cache.put(vec![(5, "mn".into())]);
        cache.forget_through(4);
        assert_eq!(cache.take(1), None);
        assert_eq!(cache.take(5).as_deref(), Some("mn"));
    }
}
