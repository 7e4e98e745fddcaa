//! Building ingest batches on the exporter thread: records' JSON appended as they arrive, zstd
//! when sealed.
//!
//! A batch is the body of one `POST /api/v1/ingest`, `{"records": [...]}` in the model's wire
//! format ([`caribou_model::Batch`]). Records arrive from the queue already serialized
//! ([`Queued`]), so a batch's size in bytes is known while it grows. A batch is full at
//! `max_records` records or at [`MAX_BATCH_BYTES`] of JSON, whichever comes first (a single record
//! larger than that still travels, alone). Sealing compresses it once with zstd; retries resend
//! the same bytes, with the same record ids.

use std::io;
use std::time::Instant;

use super::queue::Queued;

/// Soft cap on the JSON of one batch. Kestrel accepts 64 MiB decompressed by default.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// zstd level 1: chat JSON still compresses ~4-8x, at about twice level 3's speed. The exporter
/// thread shares the machine's cores with the agent, so its CPU is the agent's loss (measured in
/// `bench/run-sdk.sh`: level 3's compressor was a quarter of the exporter thread's time).
const ZSTD_LEVEL: i32 = 1;

const HEAD: &[u8] = br#"{"records":["#;
const TAIL: &[u8] = b"]}";

/// A sealed batch, ready to send (and resend).
#[derive(Debug)]
pub struct SealedBatch {
    /// zstd-compressed JSON.
    pub body: Vec<u8>,
    pub records: u64,
    /// Uncompressed JSON size, for logs.
    pub json_bytes: usize,
}

/// The batch being filled.
#[derive(Debug)]
pub struct BatchBuilder {
    json: Vec<u8>,
    records: u64,
    max_records: u64,
    max_bytes: usize,
    first_at: Option<Instant>,
}

impl BatchBuilder {
    pub fn new(max_records: usize, max_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            json: Vec::new(),
            records: 0,
            max_records: u64::try_from(max_records.max(1)).unwrap_or(u64::MAX),
            max_bytes: max_bytes.max(1),
            first_at: None,
        }
    }

    /// Adds a record.
    pub fn push(&mut self, record: &Queued) {
        if self.records == 0 {
            self.json.clear();
            self.json.extend_from_slice(HEAD);
            self.first_at = Some(Instant::now());
        } else {
            self.json.push(b',');
        }
        self.json.extend_from_slice(record.json());
        self.records += 1;
    }

    pub fn len(&self) -> u64 {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn is_full(&self) -> bool {
        self.records >= self.max_records || self.json.len() >= self.max_bytes
    }

    /// When the first record of this batch arrived.
    pub fn first_at(&self) -> Option<Instant> {
        self.first_at.filter(|_| self.records > 0)
    }

    /// Closes the JSON, compresses it and starts a new, empty batch.
    pub fn seal(
        &mut self,
        compressor: &mut zstd::bulk::Compressor<'static>,
    ) -> io::Result<SealedBatch> {
        self.json.extend_from_slice(TAIL);
        let records = std::mem::take(&mut self.records);
        self.first_at = None;
        let json_bytes = self.json.len();
        let body = compressor.compress(&self.json);
        self.json.clear();
        Ok(SealedBatch {
            body: body?,
            records,
            json_bytes,
        })
    }
}

/// A compressor for the exporter thread (keeps its context between batches).
pub fn compressor() -> io::Result<zstd::bulk::Compressor<'static>> {
    zstd::bulk::Compressor::new(ZSTD_LEVEL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::queue::TurnKey;
    use caribou_model::{Batch, Item, Message, Record, RolloutStatus, StatusRecord};

    fn message(text: &str) -> Item {
        Item::Message(Message {
            role: "assistant".into(),
            content: Some(text.into()),
            input_tokens: Some(3),
            cost_usd: Some(0.5),
            ..Default::default()
        })
    }

    fn item(turn: &TurnKey, text: &str) -> Queued {
        let (id, ts) = crate::ids::new_id_and_ts();
        Queued::item(id, ts, turn, &message(text)).unwrap()
    }

    fn turn() -> TurnKey {
        TurnKey::new(
            "trc_x \"quoted\" \u{e9}".into(),
            crate::ids::new_id_and_ts().0,
            true,
        )
    }

    fn unpack(sealed: &SealedBatch) -> Batch {
        let json = zstd::decode_all(&sealed.body[..]).unwrap();
        assert_eq!(json.len(), sealed.json_bytes);
        serde_json::from_slice(&json).unwrap()
    }

    #[test]
    fn item_wire_matches_the_model() {
        let turn = turn();
        let (id, ts) = crate::ids::new_id_and_ts();
        let item = message("hello \"you\"\n\u{1F98C}");
        let queued = Queued::item(id, ts, &turn, &item).unwrap();
        let expected = Record::Item(caribou_model::ItemRecord {
            id,
            trace_id: turn.trace_id.clone(),
            ts,
            turn_id: Some(turn.turn_id),
            item,
        });
        assert_eq!(
            serde_json::from_slice::<Record>(queued.json()).unwrap(),
            expected
        );
        assert_eq!(
            serde_json::to_vec(&expected).unwrap(),
            queued.json(),
            "same bytes as the model"
        );
        let other = Record::Status(StatusRecord {
            id,
            trace_id: "trc_x".into(),
            ts,
            status: RolloutStatus::Completed,
        });
        assert_eq!(
            Queued::record(&other).unwrap().json(),
            serde_json::to_vec(&other).unwrap()
        );
    }

    #[test]
    fn a_huge_record_does_not_keep_its_scratch() {
        let turn = turn();
        let big = item(&turn, &"y".repeat(1 << 20));
        assert!(big.approx_bytes() > 1 << 20);
        let small = item(&turn, "z");
        assert!(small.approx_bytes() < 400, "{}", small.approx_bytes());
        crate::exporter::queue::SCRATCH.with(|s| assert!(s.borrow().capacity() <= 64 << 10));
    }

    #[test]
    fn batches_fill_by_count_and_round_trip() {
        let turn = turn();
        let mut builder = BatchBuilder::new(3, MAX_BATCH_BYTES);
        let mut compressor = compressor().unwrap();
        assert!(builder.is_empty() && builder.first_at().is_none());
        builder.push(&item(&turn, "a"));
        builder.push(
            &Queued::record(&Record::Status(StatusRecord {
                id: crate::ids::new_id_and_ts().0,
                trace_id: "trc_x".into(),
                ts: caribou_model::now_us(),
                status: RolloutStatus::Truncated,
            }))
            .unwrap(),
        );
        assert!(!builder.is_full());
        builder.push(&item(&turn, "c"));
        assert!(builder.is_full() && builder.first_at().is_some());
        let sealed = builder.seal(&mut compressor).unwrap();
        assert_eq!(sealed.records, 3);
        let batch = unpack(&sealed);
        assert_eq!(batch.records.len(), 3);
        assert_eq!(batch.records[1].kind(), "status");
        caribou_model::validate::check_batch(&batch, &caribou_model::Limits::DEFAULT).unwrap();

        // The builder starts over, clean.
        assert!(builder.is_empty() && builder.first_at().is_none());
        builder.push(&item(&turn, "d"));
        let again = unpack(&builder.seal(&mut compressor).unwrap());
        assert_eq!(again.records.len(), 1);
    }

    #[test]
    fn batches_fill_by_bytes_and_compress() {
        let turn = turn();
        let mut builder = BatchBuilder::new(1_000, 4_000);
        let text = "x".repeat(500);
        let mut n = 0;
        while !builder.is_full() {
            builder.push(&item(&turn, &text));
            n += 1;
        }
        assert!(
            (5..=8).contains(&n),
            "{n} records of ~700 bytes fill 4000 bytes"
        );
        let sealed = builder.seal(&mut compressor().unwrap()).unwrap();
        assert!(
            sealed.body.len() * 4 < sealed.json_bytes,
            "repetitive JSON compresses"
        );
        assert_eq!(unpack(&sealed).records.len(), n);
    }
}
