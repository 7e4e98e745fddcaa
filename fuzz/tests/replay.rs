//! Replays every committed corpus input through the fuzz targets' logic: the CI form of the fuzz
//! targets (stable Rust, no cargo-fuzz). `scripts/fuzz-replay.sh` runs it.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    for path in inputs(target) {
        let data = std::fs::read(&path).expect("read corpus input");
        // A panic names the input that caused it.
        eprintln!("{target}: {}", path.display());
        run(&data);
    }
}

#[test]
fn ingest_decode_corpus() {
    replay("ingest_decode", kestrel_fuzz::ingest_decode);
}

#[test]
fn query_parse_corpus() {
    replay("query_parse", kestrel_fuzz::query_parse);
}

#[test]
fn store_ingest_corpus() {
    // The same inputs as the decoder: the valid ones reach the store.
    replay("ingest_decode", kestrel_fuzz::store_ingest);
    if Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus/store_ingest")
        .is_dir()
    {
        replay("store_ingest", kestrel_fuzz::store_ingest);
    }
}
