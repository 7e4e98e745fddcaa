//! libFuzzer entry point; the logic is `kestrel_fuzz::store_ingest` (also replayed by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kestrel_fuzz::store_ingest(data);
});
