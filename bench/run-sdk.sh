#!/usr/bin/env bash
# One command: builds what it needs (bench/_setup.sh), then runs bench/sdk_hot_path.py with the given
# arguments and prints its table. With --instructions first, runs bench/sdk_instructions.py instead
# (instructions per SDK operation, counted by callgrind). See bench/README.md.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
if [ "${1:-}" = "--instructions" ]; then
    shift
    exec "$py" "$repo/bench/sdk_instructions.py" "$@"
fi
exec "$py" "$repo/bench/sdk_hot_path.py" "$@"
