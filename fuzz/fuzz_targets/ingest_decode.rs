//! libFuzzer entry point; the logic is `kestrel_fuzz::ingest_decode` (also replayed by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kestrel_fuzz::ingest_decode(data);
});
