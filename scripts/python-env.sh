#!/usr/bin/env bash
# Sets up the Python environment of the repository: <repo>/.venv with maturin, pytest, mypy and
# pydantic (the tests feed real pydantic models to the SDK), and the `caribou` package built from
# crates/caribou-python the way a user installs it (`pip install ./crates/caribou-python`).
#
# Idempotent: the venv and tools are created once; the package is rebuilt only when a source of
# it (the three caribou crates, the workspace manifest or the lock file) changed since the last
# install. Honours CARGO_TARGET_DIR (maturin builds through cargo). Set CARIBOU_FORCE_REBUILD=1 to
# rebuild anyway.
#
#   bash scripts/python-env.sh && .venv/bin/pytest tests/python -q
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "python-env: creating $venv" >&2
    "$python" -m venv "$venv"
fi

tools=("maturin>=1.9,<2" "pytest>=8,<10" "mypy>=1.11,<3" "pydantic>=2.5,<3")
if ! "$venv/bin/python" -c "import maturin, pytest, mypy, pydantic" >/dev/null 2>&1; then
    echo "python-env: installing ${tools[*]}" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${tools[@]}"
fi

# A fingerprint of everything the extension is built from.
stamp_file="$venv/.caribou-build-stamp"
stamp="$(
    cd "$repo" &&
        find crates/caribou crates/caribou-model crates/caribou-python \
            -path '*/target' -prune -o -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.py' -o -name '*.pyi' -o -name 'py.typed' \) -print |
        LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
)-$(sha256sum "$repo/Cargo.toml" "$repo/Cargo.lock" | sha256sum | cut -d' ' -f1)"

if [ "${CARIBOU_FORCE_REBUILD:-0}" != 1 ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] &&
    "$venv/bin/python" -c "import caribou" >/dev/null 2>&1; then
    echo "python-env: caribou is up to date" >&2
    exit 0
fi

echo "python-env: building and installing caribou from crates/caribou-python" >&2
# --no-build-isolation: build with the venv's maturin instead of fetching one per build (its
# PEP 517 hooks run the `maturin` found on PATH).
export PATH="$venv/bin:$PATH"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps \
    "$repo/crates/caribou-python"
echo "$stamp" >"$stamp_file"
"$venv/bin/python" -c "import caribou; print('python-env: caribou', caribou.__version__, 'installed')" >&2
