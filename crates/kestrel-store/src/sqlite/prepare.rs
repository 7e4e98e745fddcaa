//! Ingest, first half: everything that needs no database, done on the caller's thread before the
//! batch reaches the one writer.
//!
//! The writer is the bottleneck of ingest (one thread, one connection), so what can run elsewhere
//! runs here, in parallel across requests: grouping the records by trace, dropping ids repeated
//! inside the batch, hashing each record's content, encoding each trace's items as the chunk the
//! writer will store (JSON, then zstd), and making their text for the full-text indexer (see
//! `text_cache`). The writer then only looks the trace up, drops records it already has, and
//! writes rows.
//!
//! Content hashes: every record gets a 64-bit hash (xxh3) of its JSON as `caribou_model::json`
//! writes it (an item: its stored element, the bytes its chunk holds). An id seen twice, in one
//! batch or across batches, is a retry when the hashes agree (counted as a duplicate) and a
//! client's mistake when they differ ([`StoreError::Conflict`]): the first copy is kept.
//!
//! Invariant: a [`PreparedTrace`]'s `chunk` and `text`, when present, are exactly the encoding and
//! the full-text of its `items`; whoever removes items (the writer, on a retried batch) drops both.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use caribou_model::api::StoredItem;
use caribou_model::{Batch, Record};
use uuid::Uuid;
use xxhash_rust::xxh3::xxh3_64;

use super::schema::internal;
use super::{chunks, indexer};
use crate::{Result, StoreError};

/// A record's id and the hash of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordKey {
    pub id: Uuid,
    pub hash: u64,
}

/// The records of one trace in one request.
#[derive(Debug)]
pub(crate) struct PreparedTrace {
    pub trace_id: String,
    /// Every record below (items included), none repeated.
    pub keys: Vec<RecordKey>,
    /// The records that are not items, in arrival order.
    pub records: Vec<Record>,
    /// The items, in arrival order.
    pub items: Vec<StoredItem>,
    /// `items` encoded for storage (`None`: no items, or not encoded yet).
    pub chunk: Option<Vec<u8>>,
    /// The plain text of `items` for the full-text index (`None`: not made).
    pub text: Option<String>,
    /// What writing it costs the writer (see [`Weight`]).
    pub weight: usize,
    /// The weight of each item, as `items`.
    item_weights: Vec<usize>,
    /// The JSON array of `items` while it is being written.
    json: Vec<u8>,
}

impl PreparedTrace {
    fn new(trace_id: String) -> PreparedTrace {
        PreparedTrace {
            trace_id,
            keys: Vec::new(),
            records: Vec::new(),
            items: Vec::new(),
            chunk: None,
            text: None,
            weight: 0,
            item_weights: Vec::new(),
            json: Vec::new(),
        }
    }

    /// The earliest `ts` of its records.
    pub(crate) fn first_ts(&self) -> Option<i64> {
        let records = self.records.iter().map(Record::ts);
        records.chain(self.items.iter().map(|i| i.ts)).min()
    }

    /// Keeps only the records whose key `keep` accepts; returns how many were dropped.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&RecordKey) -> bool) -> usize {
        let before = self.keys.len();
        self.keys.retain(|k| keep(k));
        if self.keys.len() == before {
            return 0;
        }
        let kept: std::collections::HashSet<Uuid> = self.keys.iter().map(|k| k.id).collect();
        self.records.retain(|r| kept.contains(&r.id()));
        let items = self.items.len();
        let mut weights = std::mem::take(&mut self.item_weights).into_iter();
        let mut kept_weights = Vec::new();
        self.items.retain(|i| {
            let weight = weights.next().unwrap_or(0);
            let keep = kept.contains(&i.id);
            if keep {
                kept_weights.push(weight);
            }
            keep
        });
        self.item_weights = kept_weights;
        if self.items.len() != items {
            self.chunk = None;
            self.text = None;
        }
        before - self.keys.len()
    }

    /// Appends an item's element to the chunk's JSON; returns its content hash, or `None` (with
    /// the JSON as it was) when `seen` already holds its id with that same hash.
    fn push_item(
        &mut self,
        item: StoredItem,
        seen: &mut HashMap<Uuid, u64>,
    ) -> Result<Option<RecordKey>> {
        let start = self.json.len();
        self.json.push(if start == 0 { b'[' } else { b',' });
        caribou_model::json::write(&mut self.json, &item)
            .map_err(|e| internal("encoding items", e))?;
        let key = RecordKey {
            id: item.id,
            hash: xxh3_64(&self.json[start + 1..]),
        };
        if !first_sight(seen, key)? {
            self.json.truncate(start);
            return Ok(None);
        }
        let weight = Weight::item(&item, self.json.len() - start);
        self.weight += weight;
        self.item_weights.push(weight);
        self.items.push(item);
        Ok(Some(key))
    }

    /// Closes the items' JSON array and compresses it as the chunk, with the items' text.
    fn seal(&mut self) -> Result<()> {
        let mut json = std::mem::take(&mut self.json);
        if !json.is_empty() {
            json.push(b']');
            self.chunk = Some(chunks::compress(&json)?);
            self.text = Some(indexer::chunk_text(&self.items));
        }
        Ok(())
    }

    /// Cuts the trace into parts of at most about `max` weight each (a record heavier than `max`
    /// is a part alone), each with its records, items, keys, chunk and text.
    fn split(mut self, max: usize) -> Result<Vec<PreparedTrace>> {
        let mut parts = Vec::new();
        let mut part = PreparedTrace::new(self.trace_id.clone());
        let keys: HashMap<Uuid, u64> = self.keys.iter().map(|k| (k.id, k.hash)).collect();
        let key_of = |id: Uuid| RecordKey {
            id,
            hash: keys.get(&id).copied().unwrap_or(0),
        };
        let records = std::mem::take(&mut self.records);
        let items = std::mem::take(&mut self.items).into_iter();
        let weights = std::mem::take(&mut self.item_weights).into_iter();
        let mut cut = |part: &mut PreparedTrace, adding: usize| -> Result<()> {
            if part.weight > 0 && part.weight + adding > max {
                let mut full = std::mem::replace(part, PreparedTrace::new(self.trace_id.clone()));
                if !full.items.is_empty() {
                    full.chunk = Some(chunks::encode(&full.items)?);
                    full.text = Some(indexer::chunk_text(&full.items));
                }
                parts.push(full);
            }
            Ok(())
        };
        for record in records {
            let weight = Weight::record(&record);
            cut(&mut part, weight)?;
            part.weight += weight;
            part.keys.push(key_of(record.id()));
            part.records.push(record);
        }
        for (item, weight) in items.zip(weights) {
            cut(&mut part, weight)?;
            part.weight += weight;
            part.keys.push(key_of(item.id));
            part.item_weights.push(weight);
            part.items.push(item);
        }
        cut(&mut part, usize::MAX)?;
        if part.weight > 0 {
            parts.push(part);
        }
        Ok(parts)
    }
}

/// What a record costs the writer, in units of about a microsecond of its time, so that a job's
/// weight bounds how long it holds the writer: a record's row work, each metadata key it sets
/// (a JSON entry and an indexed row), each tag (an indexed row), each grade (a row), and the
/// item's JSON (compressed and stored).
pub(crate) struct Weight;

impl Weight {
    const RECORD: usize = 5;
    const META_KEY: usize = 12;
    const TAG: usize = 4;
    const GRADE: usize = 4;
    /// Bytes of item JSON per unit.
    const BYTES: usize = 1 << 10;

    fn record(record: &Record) -> usize {
        Self::RECORD
            + match record {
                Record::TraceOpen(o) => o.metadata.as_ref().map_or(0, |m| m.len()) * Self::META_KEY,
                Record::Metadata(m) => m.metadata.len() * Self::META_KEY,
                Record::Tags(t) => t.tags.len() * Self::TAG,
                _ => 0,
            }
    }

    fn item(item: &StoredItem, json_bytes: usize) -> usize {
        let grade = match item.item {
            caribou_model::Item::Grade(_) => Self::GRADE,
            _ => 0,
        };
        Self::RECORD + grade + json_bytes / Self::BYTES
    }
}

/// Whether `key` is new to `seen` (then recorded); `false` for a repeat of the same content, a
/// conflict for the same id with other content.
fn first_sight(seen: &mut HashMap<Uuid, u64>, key: RecordKey) -> Result<bool> {
    match seen.entry(key.id) {
        Entry::Vacant(slot) => {
            slot.insert(key.hash);
            Ok(true)
        }
        Entry::Occupied(first) if *first.get() == key.hash => Ok(false),
        Entry::Occupied(_) => Err(reused_id(key.id, "twice in this batch")),
    }
}

/// The conflict of a record id used for two different records.
pub(crate) fn reused_id(id: Uuid, where_: &str) -> StoreError {
    StoreError::Conflict(format!(
        "record id {id} was sent {where_} with different content; the first copy is kept. A record \
         id names one record: give every record its own id (resending the same record is fine)"
    ))
}

/// The content hash of a record that is not an item.
fn record_hash(record: &Record, scratch: &mut Vec<u8>) -> Result<u64> {
    scratch.clear();
    caribou_model::json::write(scratch, record).map_err(|e| internal("encoding a record", e))?;
    Ok(xxh3_64(scratch))
}

/// A batch grouped by trace, traces in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct PreparedBatch {
    pub traces: Vec<PreparedTrace>,
    /// Records dropped because their id appeared earlier in the same batch.
    pub duplicates: u64,
}

impl PreparedBatch {
    /// What writing it costs the writer (the writer's job weight, see [`Weight`]).
    pub(crate) fn weight(&self) -> usize {
        self.traces.iter().map(|t| t.weight).sum()
    }

    /// Cuts the batch into batches of at most about `max` weight each, in order: whole traces
    /// while they fit, a trace heavier than `max` in parts. Duplicates are counted in the first.
    /// Records of a trace may be stored in any number of requests (`ingest`), so the parts store
    /// what the whole would.
    pub(crate) fn split(self, max: usize) -> Result<Vec<PreparedBatch>> {
        if self.weight() <= max {
            return Ok(vec![self]);
        }
        let mut out = vec![PreparedBatch {
            traces: Vec::new(),
            duplicates: self.duplicates,
        }];
        for trace in self.traces {
            let pieces = if trace.weight > max {
                trace.split(max)?
            } else {
                vec![trace]
            };
            for piece in pieces {
                let last = out.len() - 1;
                if out[last].weight() > 0 && out[last].weight() + piece.weight > max {
                    out.push(PreparedBatch::default());
                }
                let last = out.len() - 1;
                out[last].traces.push(piece);
            }
        }
        Ok(out)
    }
}

/// Groups `batch` by trace, drops repeats, hashes every record and encodes each trace's items.
pub(crate) fn prepare(batch: Batch) -> Result<PreparedBatch> {
    let mut out = PreparedBatch::default();
    let mut seen: HashMap<Uuid, u64> = HashMap::with_capacity(batch.records.len());
    let mut slots: HashMap<String, usize> = HashMap::new();
    let mut scratch = Vec::new();
    for record in batch.records {
        let slot = match slots.get(record.trace_id()) {
            Some(slot) => *slot,
            None => {
                let trace_id = record.trace_id().to_owned();
                slots.insert(trace_id.clone(), out.traces.len());
                out.traces.push(PreparedTrace::new(trace_id));
                out.traces.len() - 1
            }
        };
        let Some(trace) = out.traces.get_mut(slot) else {
            continue;
        };
        let key = match record {
            Record::Item(r) => trace.push_item(
                StoredItem {
                    id: r.id,
                    ts: r.ts,
                    turn_id: r.turn_id,
                    item: r.item,
                },
                &mut seen,
            )?,
            other => {
                let key = RecordKey {
                    id: other.id(),
                    hash: record_hash(&other, &mut scratch)?,
                };
                if first_sight(&mut seen, key)? {
                    trace.weight += Weight::record(&other);
                    trace.records.push(other);
                    Some(key)
                } else {
                    None
                }
            }
        };
        match key {
            Some(key) => trace.keys.push(key),
            None => out.duplicates += 1,
        }
    }
    for trace in &mut out.traces {
        trace.seal()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::fixtures::{T0, batch, msg, tool};

    #[test]
    fn groups_by_trace_drops_repeats_and_keeps_chunk_and_text_true() {
        let a1 = msg("a", T0, 1, 1, 0.0);
        let b1 = tool("b", T0 + 1, "search");
        let a2 = tool("a", T0 + 2, "sql");
        let records = vec![a1.clone(), b1, a2.clone(), a1.clone()];
        let mut prepared = prepare(batch(records)).expect("prepare");
        assert_eq!(
            prepared.duplicates, 1,
            "the repeated record is counted once"
        );
        let traces: Vec<_> = prepared
            .traces
            .iter()
            .map(|t| t.trace_id.as_str())
            .collect();
        assert_eq!(traces, ["a", "b"], "traces in order of first appearance");
        let a = &mut prepared.traces[0];
        let ids: Vec<Uuid> = a.keys.iter().map(|k| k.id).collect();
        assert_eq!(ids, [a1.id(), a2.id()]);
        assert_eq!(a.first_ts(), Some(T0));
        assert!(a.text.as_deref().is_some_and(|t| t.contains("sql")));
        let encoded = a.chunk.clone().expect("encoded");
        assert_eq!(chunks::decode(2, &encoded).expect("decode"), a.items);
        assert_eq!(a.retain(|_| true), 0);
        assert!(
            a.chunk.is_some(),
            "nothing dropped: the encoding still holds"
        );
        assert_eq!(a.retain(|k| k.id != a1.id()), 1);
        assert_eq!((a.items.len(), a.keys.len()), (1, 1));
        assert!(
            a.chunk.is_none() && a.text.is_none(),
            "items changed: encoding and text are made again"
        );
    }

    #[test]
    fn an_id_repeated_with_other_content_is_a_conflict() {
        let a1 = msg("a", T0, 1, 1, 0.0);
        let mut other = msg("a", T0, 1, 2, 0.0);
        if let (Record::Item(o), Record::Item(a)) = (&mut other, &a1) {
            o.id = a.id;
        }
        let e = prepare(batch(vec![a1.clone(), other])).unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
        assert!(e.to_string().contains(&a1.id().to_string()), "{e}");
        let same = prepare(batch(vec![a1.clone(), a1.clone()])).expect("a repeat");
        assert_eq!(same.duplicates, 1);
    }
}
