//! Ingest, first half: everything that needs no database, done on the caller's thread before the
//! batch reaches the one writer.
//!
//! The writer is the bottleneck of ingest (one thread, one connection), so what can run elsewhere
//! runs here, in parallel across requests: grouping the records by trace, dropping ids repeated
//! inside the batch, encoding each trace's items as the chunk the writer will store (JSON, then
//! zstd), and making their text for the full-text indexer (see `text_cache`). The writer then only looks the trace up, drops records it already has, and writes
//! rows.
//!
//! Invariant: a [`PreparedTrace`]'s `chunk` and `text`, when present, are exactly the encoding and
//! the full-text of its `items`; whoever removes items (the writer, on a retried batch) drops both.

use std::collections::{HashMap, HashSet};

use caribou_model::api::StoredItem;
use caribou_model::{Batch, Record};
use uuid::Uuid;

use super::{chunks, indexer};
use crate::Result;

/// The records of one trace in one request.
#[derive(Debug)]
pub(crate) struct PreparedTrace {
    pub trace_id: String,
    /// Id of every record below (items included), in arrival order, none repeated.
    pub ids: Vec<Uuid>,
    /// The records that are not items, in arrival order.
    pub records: Vec<Record>,
    /// The items, in arrival order.
    pub items: Vec<StoredItem>,
    /// `items` encoded for storage (`None`: no items, or not encoded yet).
    pub chunk: Option<Vec<u8>>,
    /// The plain text of `items` for the full-text index (`None`: not made).
    pub text: Option<String>,
}

impl PreparedTrace {
    /// The earliest `ts` of its records.
    pub(crate) fn first_ts(&self) -> Option<i64> {
        let records = self.records.iter().map(Record::ts);
        records.chain(self.items.iter().map(|i| i.ts)).min()
    }

    /// Keeps only the records whose id `keep` accepts; returns how many were dropped.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Uuid) -> bool) -> usize {
        let before = self.ids.len();
        self.ids.retain(|id| keep(id));
        if self.ids.len() == before {
            return 0;
        }
        let kept: HashSet<Uuid> = self.ids.iter().copied().collect();
        self.records.retain(|r| kept.contains(&r.id()));
        let items = self.items.len();
        self.items.retain(|i| kept.contains(&i.id));
        if self.items.len() != items {
            self.chunk = None;
            self.text = None;
        }
        before - self.ids.len()
    }
}

/// A batch grouped by trace, traces in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct PreparedBatch {
    pub traces: Vec<PreparedTrace>,
    /// Records dropped because their id appeared earlier in the same batch.
    pub duplicates: u64,
}

/// Groups `batch` by trace and encodes each trace's items. With `encode` false the chunks are left
/// to the writer (a single graded item is not worth a trip to another thread).
pub(crate) fn prepare(batch: Batch, encode: bool) -> Result<PreparedBatch> {
    let mut out = PreparedBatch::default();
    let mut seen: HashSet<Uuid> = HashSet::with_capacity(batch.records.len());
    let mut slots: HashMap<String, usize> = HashMap::new();
    for record in batch.records {
        let id = record.id();
        if !seen.insert(id) {
            out.duplicates += 1;
            continue;
        }
        let slot = match slots.get(record.trace_id()) {
            Some(slot) => *slot,
            None => {
                let trace_id = record.trace_id().to_owned();
                slots.insert(trace_id.clone(), out.traces.len());
                out.traces.push(PreparedTrace {
                    trace_id,
                    ids: Vec::new(),
                    records: Vec::new(),
                    items: Vec::new(),
                    chunk: None,
                    text: None,
                });
                out.traces.len() - 1
            }
        };
        let Some(trace) = out.traces.get_mut(slot) else {
            continue;
        };
        trace.ids.push(id);
        match record {
            Record::Item(r) => trace.items.push(StoredItem {
                id: r.id,
                ts: r.ts,
                turn_id: r.turn_id,
                item: r.item,
            }),
            other => trace.records.push(other),
        }
    }
    if encode {
        for trace in &mut out.traces {
            if !trace.items.is_empty() {
                trace.chunk = Some(chunks::encode(&trace.items)?);
                trace.text = Some(indexer::chunk_text(&trace.items));
            }
        }
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
        let mut prepared = prepare(batch(records), true).expect("prepare");
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
        assert_eq!(a.ids, [a1.id(), a2.id()]);
        assert_eq!(a.first_ts(), Some(T0));
        assert!(a.text.as_deref().is_some_and(|t| t.contains("sql")));
        let encoded = a.chunk.clone().expect("encoded");
        assert_eq!(chunks::decode(2, &encoded).expect("decode"), a.items);
        assert_eq!(a.retain(|_| true), 0);
        assert!(
            a.chunk.is_some(),
            "nothing dropped: the encoding still holds"
        );
        assert_eq!(a.retain(|id| *id != a1.id()), 1);
        assert_eq!((a.items.len(), a.ids.len()), (1, 1));
        assert!(
            a.chunk.is_none() && a.text.is_none(),
            "items changed: encoding and text are made again"
        );
    }
}
