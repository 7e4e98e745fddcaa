"""The hand-written stubs match the extension (``mypy.stubtest``), and the examples type-check
against the package as installed (``mypy``), so the stubs cannot drift unnoticed."""

from __future__ import annotations

import subprocess
import sys

from conftest import EXAMPLES, REPO


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_stubtest_finds_no_drift() -> None:
    proc = run("-m", "mypy.stubtest", "caribou._caribou")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_examples_type_check() -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.py"))
    proc = run("-m", "mypy", "--no-incremental", "--check-untyped-defs", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_package_type_checks_strictly() -> None:
    proc = run("-m", "mypy", "--no-incremental", "--strict", "-p", "caribou")
    assert proc.returncode == 0, proc.stdout + proc.stderr
