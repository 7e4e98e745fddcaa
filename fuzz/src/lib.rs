//! The fuzz targets' logic, shared by the libFuzzer binaries (`fuzz_targets/`) and the corpus
//! replay test (`tests/replay.rs`, plain `cargo test` on stable).
//!
//! Each function takes arbitrary bytes and panics only on a bug:
//! - [`ingest_decode`]: an ingest body (decompressed) as Kestrel reads it: JSON into a
//!   [`Batch`], then [`check_batch`]. A batch that passes must serialize and read back as valid
//!   again (what an SDK sends is what the server reads).
//! - [`query_parse`]: the search language's parser on any text (errors are fine, panics are not).
//! - [`store_ingest`]: a valid batch into a real SQLite store (in a temporary folder), twice. The
//!   store may refuse it as invalid (a 400), never with an internal error (a 500), and the second
//!   ingest stores nothing new: every record comes back as a duplicate.

use std::sync::OnceLock;

use caribou_model::validate::check_batch;
use caribou_model::{Batch, Limits};
use kestrel_store::sqlite::{SqliteConfig, SqliteStore};
use kestrel_store::{Store, StoreError};

/// A fixed "now" so that relative times in queries (`since:1h`) do not depend on the clock.
const NOW_US: i64 = 1_750_000_000_000_000;

/// JSON → [`Batch`] → validation, and the round trip of a valid batch.
pub fn ingest_decode(data: &[u8]) {
    let Some(batch) = valid_batch(data) else {
        return;
    };
    let json = serde_json::to_vec(&batch).expect("a valid batch serializes");
    let again: Batch = serde_json::from_slice(&json).expect("a valid batch's JSON reads back");
    assert_eq!(again.records.len(), batch.records.len());
    check_batch(&again, &Limits::DEFAULT).expect("a valid batch stays valid after a round trip");
}

/// The search language on arbitrary text.
pub fn query_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = kestrel_query::parse_at(&text, NOW_US);
}

/// A valid batch into the SQLite store, twice.
pub fn store_ingest(data: &[u8]) {
    let Some(batch) = valid_batch(data) else {
        return;
    };
    let records = batch.records.len() as u64;
    let (runtime, store) = store();
    match runtime.block_on(store.ingest(batch.clone())) {
        Ok(first) => assert_eq!(
            first.accepted + first.duplicates,
            records,
            "every record is accounted for"
        ),
        Err(StoreError::Internal(message)) => {
            panic!("a valid batch made the store fail internally: {message}")
        }
        Err(_) => return,
    }
    match runtime.block_on(store.ingest(batch)) {
        Ok(second) => assert_eq!(
            (second.accepted, second.duplicates),
            (0, records),
            "ingest is idempotent"
        ),
        Err(e) => panic!("a batch accepted once fails the second time: {e}"),
    }
}

fn valid_batch(data: &[u8]) -> Option<Batch> {
    let batch: Batch = serde_json::from_slice(data).ok()?;
    check_batch(&batch, &Limits::DEFAULT).ok()?;
    Some(batch)
}

/// One store per process: opening one per input would measure SQLite's start-up, not ingest.
fn store() -> &'static (tokio::runtime::Runtime, SqliteStore) {
    static STORE: OnceLock<(tokio::runtime::Runtime, SqliteStore)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        // Kept for the life of the process (the store writes into it).
        let path = dir.keep();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let store = SqliteStore::open(SqliteConfig::new(path)).expect("the store opens");
        (runtime, store)
    })
}
