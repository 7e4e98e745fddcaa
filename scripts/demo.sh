#!/usr/bin/env bash
# The main job: builds Kestrel, starts it with the embedded store, and runs the seed's examples against it.
#
#   scripts/demo.sh            # Kestrel stays up afterwards (Ctrl-C stops it)
#   DEMO_EXIT=1 scripts/demo.sh  # stop Kestrel once the examples have run
#
# KESTREL_ADDR (default 127.0.0.1:8750) and KESTREL_DATA_DIR (default ./kestrel-data) say where.
set -euo pipefail
cd "$(dirname "$0")/.."

addr="${KESTREL_ADDR:-127.0.0.1:8750}"
data="${KESTREL_DATA_DIR:-$PWD/kestrel-data}"
url="http://$addr"

echo "==> building kestrel (release)"
cargo build --release --locked -p kestrel
echo "==> preparing the python environment (.venv, caribou)"
bash scripts/python-env.sh >/dev/null

echo "==> starting kestrel on $addr, data in $data"
target/release/kestrel serve --addr "$addr" --data-dir "$data" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

.venv/bin/python - "$url" <<'PY'
import sys, time, urllib.request
url = sys.argv[1] + "/healthz"
deadline = time.time() + 30
while True:
    try:
        urllib.request.urlopen(url, timeout=1).read()
        break
    except Exception as e:  # not up yet
        if time.time() > deadline:
            sys.exit(f"kestrel did not come up at {url}: {e}")
        time.sleep(0.1)
PY

export KESTREL_URL="$url"
for example in examples/prod_request.py examples/complete.py examples/multi_turn.py examples/eval_run.py examples/train_run.py; do
    echo "==> python $example"
    .venv/bin/python "$example"
done

cat <<MSG

Kestrel is running at $url (data in $data). Look at what the examples sent:
  $url/                                     the web UI: projects, runs, reward curves, traces, search
  $url/ui/projects/my-agent                 the seed's complete example
  $url/ui/search?q=status:error             a search
  target/release/kestrel traces --url $url  the same from the command line (kestrel trace ID reads one)
  $url/api/v1/openapi.json                  every endpoint, documented
MSG

if [ "${DEMO_EXIT:-0}" = "1" ]; then
    exit 0
fi
echo "Ctrl-C stops it."
wait "$pid"
