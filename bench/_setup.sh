# Sourced by bench/run-*.sh: builds and installs what the benches need, from a clean clone.
#
# - bench/.venv: a venv of its own (the repository's .venv stays as the tests want it) holding
#   caribou built in release from crates/caribou-python, and the peers' SDKs (OpenTelemetry with
#   the OTLP/HTTP exporter, Langfuse) for the same-run comparison.
# - a release Kestrel in $CARGO_TARGET_DIR (default <repo>/target); KESTREL_BIN overrides it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/bench/.venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"

if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import maturin, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, langfuse" >/dev/null 2>&1; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2" \
        opentelemetry-sdk opentelemetry-exporter-otlp-proto-http langfuse
fi
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    (cd "$repo" && cargo build --quiet --release -p kestrel)
    # maturin builds in release for pip; cargo's incremental build makes a re-run cheap.
    PATH="$venv/bin:$PATH" "$venv/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation \
        --force-reinstall --no-deps "$repo/crates/caribou-python"
fi
py="$venv/bin/python"
