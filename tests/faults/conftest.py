"""Fixtures of the fault suite; the parts and the accounting are in faultkit.py."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Iterator

import pytest

from faultkit import CASE_TIMEOUT, REPORT_LINES, Kestrel


@pytest.fixture
def kestrel(tmp_path: Path) -> Iterator[Kestrel]:
    """A Kestrel of this test alone (not started: the scenario decides when)."""
    k = Kestrel(tmp_path / "kestrel-data")
    try:
        yield k
    finally:
        k.stop()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture(autouse=True)
def bounded_case() -> Iterator[None]:
    """Fails a case that runs longer than CASE_TIMEOUT seconds instead of hanging the suite."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"fault case ran longer than {CASE_TIMEOUT}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(CASE_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT_LINES:
        terminalreporter.section("fault scenarios")
        for line in REPORT_LINES:
            terminalreporter.write_line(line)
