#!/usr/bin/env bash
# The fuzz targets of fuzz/ in two forms:
#   scripts/fuzz-replay.sh            replays the committed corpus through the targets' logic with a
#                                     plain `cargo test` (stable Rust; what CI runs; ~1 min warm)
#   scripts/fuzz-replay.sh --run 60   also fuzzes each target for 60 s with cargo-fuzz (needs
#                                     `cargo install cargo-fuzz`; nightly features via RUSTC_BOOTSTRAP)
# The fuzz crate is not a workspace member: it has its own lock file (fuzz/Cargo.lock).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --manifest-path fuzz/Cargo.toml --no-default-features --tests

if [ "${1:-}" = "--run" ]; then
    seconds="${2:-60}"
    found="$(mktemp -d)"
    for target in ingest_decode query_parse store_ingest; do
        seeds="fuzz/corpus/$target"
        [ "$target" = store_ingest ] && seeds="fuzz/corpus/ingest_decode"
        mkdir -p "$found/$target"
        echo "==> fuzzing $target for ${seconds}s (new inputs in $found/$target)"
        # The first corpus folder receives new inputs: a temporary one, so the committed seeds stay
        # as they are. A crash leaves its input in fuzz/artifacts/<target>/.
        RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$found/$target" "$seeds" -- \
            -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=1048576
    done
fi
