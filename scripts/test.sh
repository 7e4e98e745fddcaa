#!/usr/bin/env bash
# Runs every test of the project, from a clean clone, installing what it needs itself:
#   1. formatting and lints (rustfmt, clippy with warnings as errors),
#   2. Rust tests: model and SDK unit tests, the store suite, Kestrel's black-box HTTP tests, SDK end-to-end tests,
#   3. Python: a .venv with maturin/pytest/mypy, the `caribou` package pip-installed from source, pytest,
#   4. the fault suite (tests/faults: Kestrel killed, down or hung, the agent killed, fork, asyncio,
#      hostile input, a bounded schemathesis run) and the fuzz targets' corpus replayed (fuzz/),
#   5. the web UI end to end in headless Chromium (Debian's chromium + chromium-driver, installed if missing).
# Every server a test needs is a real `kestrel serve` started by the test itself on a free 127.0.0.1 port.
set -euo pipefail
cd "$(dirname "$0")/.."

# The SDK's default spool lives under the user's cache dir, one folder per endpoint. Tests start Kestrels on
# random ports, so a spool left by an earlier run for the same port could replay into a test's server: give the
# run a cache dir of its own.
XDG_CACHE_HOME="$(mktemp -d)"
export XDG_CACHE_HOME
trap 'rm -rf "$XDG_CACHE_HOME"' EXIT

step() { printf '\n==> %s\n' "$*"; }

# Where cargo puts the build: `CARGO_TARGET_DIR` when set (cargo honours it; relative to here), else
# ./target.
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
kestrel_bin="$target_dir/debug/kestrel"

step "rustfmt"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build kestrel"
cargo build --locked -p kestrel

step "rust tests"
cargo test --locked --workspace --exclude caribou-python

step "python environment"
bash scripts/python-env.sh

step "python tests"
KESTREL_BIN="$kestrel_bin" .venv/bin/python -m pytest tests/python -q -p no:cacheprovider

step "fault suite (Kestrel killed/down/hung, agent killed, fork, asyncio, hostile input, schemathesis smoke)"
.venv/bin/python -c "import schemathesis" 2>/dev/null ||
    .venv/bin/pip install --quiet --disable-pip-version-check "schemathesis>=4,<5"
KESTREL_BIN="$kestrel_bin" .venv/bin/python -m pytest tests/faults -q -p no:cacheprovider

step "fuzz targets: the committed corpus replayed"
bash scripts/fuzz-replay.sh

step "web UI end-to-end tests (headless Chromium)"
bash scripts/ui-test-deps.sh
KESTREL_BIN="$kestrel_bin" .venv/bin/python -m pytest tests/ui -q -p no:cacheprovider
