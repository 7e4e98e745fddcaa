#!/usr/bin/env bash
# One command: builds what it needs (bench/_setup.sh), then runs bench/sdk_hot_path.py with the given
# arguments and prints its table. See bench/README.md.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
exec "$py" "$repo/bench/sdk_hot_path.py" "$@"
