"""What the SDK drops is said in Python's `logging` (logger `caribou`, level WARNING), once per
cause, besides being counted in `caribou.stats()`: a full queue, and a batch Kestrel refuses (here
a trace id that another project holds, which Kestrel answers with a 409 naming it)."""

from __future__ import annotations

import logging
import uuid

import pytest

import caribou
from caribou import Message
from conftest import Kestrel
from test_flush import closed_port_url


def caribou_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "caribou" and r.levelno == logging.WARNING]


def test_a_full_queue_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caribou.configure(
        run_id="nowhere", phase="prod", endpoint=closed_port_url(), queue_capacity=16, connect_timeout=0.2, spool=False
    )
    try:
        with caplog.at_level(logging.WARNING, logger="caribou"):
            for _ in range(2):
                with caribou.trace_run({"datapoint_id": "flood"}):
                    for i in range(2000):
                        caribou.log(Message(role="user", content=f"m{i}"))
            caribou.shutdown(timeout=0.2)
        full = [m for m in caribou_warnings(caplog) if "exporter queue full" in m]
        assert len(full) == 1, caribou_warnings(caplog)
        assert any("records were dropped in all" in m for m in caribou_warnings(caplog))
        assert caribou.stats()["dropped_queue_full"] > 1
    finally:
        caribou.configure(endpoint="")


def test_a_batch_kestrel_refuses_is_logged_with_its_reason(kestrel: Kestrel, caplog: pytest.LogCaptureFixture) -> None:
    owner, other = ("drops-" + uuid.uuid4().hex[:8] for _ in range(2))
    trace_id = "trc_session_" + uuid.uuid4().hex[:8]
    try:
        with caplog.at_level(logging.WARNING, logger="caribou"):
            for project in (owner, other):
                caribou.configure(run_id=project, phase="prod", endpoint=kestrel.url)
                with caribou.trace_run({"trace_id": trace_id, "datapoint_id": "s"}):
                    caribou.log(Message(role="user", content=f"from {project}"))
                report = caribou.flush(timeout=10)
            assert report.dropped > 0, report
            caribou.shutdown(timeout=5)
        refused = [m for m in caribou_warnings(caplog) if "refused a batch" in m]
        assert len(refused) == 1, caribou_warnings(caplog)
        assert "409" in refused[0] and owner in refused[0], refused[0]
        assert kestrel.trace(trace_id)["project"] == owner
    finally:
        caribou.configure(endpoint="")
