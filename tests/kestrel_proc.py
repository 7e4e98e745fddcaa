"""What every Python test suite needs to run a real Kestrel: its binary, a free port, a clean environment.

Shared by ``tests/python``, ``tests/faults`` and ``tests/ui`` (each conftest puts ``tests/`` on ``sys.path``).
The binary is ``$KESTREL_BIN``, else ``$CARGO_TARGET_DIR/debug/kestrel`` or ``<repo>/target/debug/kestrel``,
built with ``cargo build -p kestrel`` when none exists.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]


def _candidates() -> List[Path]:
    found = []
    if os.environ.get("CARGO_TARGET_DIR"):
        found.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "kestrel")
    found.append(REPO / "target" / "debug" / "kestrel")
    return found


def kestrel_binary() -> Path:
    """The kestrel binary to test, built if needed; raises RuntimeError when there is none."""
    if os.environ.get("KESTREL_BIN"):
        return Path(os.environ["KESTREL_BIN"])
    for c in _candidates():
        if c.exists():
            return c
    cargo = shutil.which("cargo")
    if cargo is None:
        raise RuntimeError("no Kestrel binary (set KESTREL_BIN) and no cargo to build one")
    subprocess.run([cargo, "build", "-p", "kestrel"], cwd=REPO, check=True)
    for c in _candidates():
        if c.exists():
            return c
    raise RuntimeError(f"cargo build -p kestrel produced none of {_candidates()}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> Dict[str, str]:
    """The environment without the caller's KESTREL_* / CARIBOU_* variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KESTREL_", "CARIBOU_"))}
