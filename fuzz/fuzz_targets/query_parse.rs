//! libFuzzer entry point; the logic is `kestrel_fuzz::query_parse` (also replayed by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kestrel_fuzz::query_parse(data);
});
