#!/usr/bin/env bash
# Installs what the web UI's end-to-end tests (tests/ui) need: Debian's `chromium` and
# `chromium-driver` (apt, as root) and `selenium` in the repository's .venv (pip).
#
# Idempotent and quiet: does nothing when both are already there; prints one line per install.
# Run `bash scripts/python-env.sh` first (it creates .venv with the caribou package).
#
#   bash scripts/ui-test-deps.sh && .venv/bin/python -m pytest tests/ui -q
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "ui-test-deps: chromium and chromium-driver are missing; run this script as root" >&2
        echo "ui-test-deps: (it runs: apt-get update && apt-get install -y chromium chromium-driver)" >&2
        exit 1
    fi
    echo "ui-test-deps: installing chromium and chromium-driver (apt)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "ui-test-deps: no $venv; run scripts/python-env.sh first" >&2
    exit 1
fi
if ! "$venv/bin/python" -c "import selenium" >/dev/null 2>&1; then
    echo "ui-test-deps: installing selenium into $venv (pip)" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium>=4.20,<5"
fi
