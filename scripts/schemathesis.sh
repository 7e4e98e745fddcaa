#!/usr/bin/env bash
# Property-based tests of Kestrel's HTTP API from its own OpenAPI document (schemathesis), against a
# fresh `kestrel serve` on a free 127.0.0.1 port with an API key, bounded in time. Checks: no 5xx,
# and responses that conform to the document (status codes, content types, schemas).
#
#   bash scripts/schemathesis.sh                         # 50 examples per operation, <= 5 min
#   SCHEMATHESIS_MAX_EXAMPLES=10 SCHEMATHESIS_TIME_LIMIT=90 bash scripts/schemathesis.sh
#
# Installs schemathesis into .venv when missing. KESTREL_BIN picks the server binary (default:
# $CARGO_TARGET_DIR/debug/kestrel or target/debug/kestrel, built if missing).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="$repo/.venv"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
time_limit="${SCHEMATHESIS_TIME_LIMIT:-300}"
checks="${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}"

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis>=4,<5"
fi

bin="${KESTREL_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/kestrel}"
[ -x "$bin" ] || cargo build -p kestrel

work="$(mktemp -d)"
port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
key="schemathesis-$$"
env -u KESTREL_CONFIG -u KESTREL_API_KEYS_FILE "$bin" serve --addr "127.0.0.1:$port" --data-dir "$work/data" \
    --api-key "$key" >"$work/kestrel.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.05
done

cd "$work"
timeout --kill-after=10 "$((time_limit + 30))" "$venv/bin/schemathesis" run \
    "http://127.0.0.1:$port/api/v1/openapi.json" \
    --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $key" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --max-time "$time_limit" \
    --request-timeout 30 \
    --seed "${SCHEMATHESIS_SEED:-7}" \
    --generation-database none \
    --no-color
