"""flush() and shutdown() tell the truth: what they report is what Kestrel holds.

Counters belong to the exporter and restart at every ``configure`` (each test configures).
Records per ``trace_run`` block: one opening, one per item, one per ``set_status`` /
``set_error`` / ``add_meta`` / ``add_tags`` call, one closing.
"""

from __future__ import annotations

import socket
import time

import caribou
from caribou import Message, RolloutStatus
from conftest import Kestrel, items_of, run_python


def closed_port_url() -> str:
    """A 127.0.0.1 URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_flush_reports_exactly_what_was_acknowledged(kestrel: Kestrel, traced: str) -> None:
    assert caribou.stats()["enqueued"] == 0
    with caribou.trace_run({"datapoint_id": "count-me"}) as trace_id:
        for i in range(3):
            caribou.log(Message(role="user", content=f"m{i}"))
        caribou.set_status(RolloutStatus.TRUNCATED)
        caribou.add_tags("a", "b")
    report = caribou.flush(timeout=10)
    # opening + 3 items + status + tags + closing
    assert (report.sent, report.dropped, report.pending, report.timed_out) == (7, 0, 0, False)
    # Acknowledged means stored: readable right away, no waiting.
    t = kestrel.trace(trace_id)
    assert [i["content"] for i in items_of(t)] == ["m0", "m1", "m2"]
    assert t["status"] == "TRUNCATED" and t["tags"] == ["a", "b"]
    stats = caribou.stats()
    assert (stats["enqueued"], stats["sent"], stats["dropped"], stats["pending"]) == (7, 7, 0, 0)
    # A second flush with nothing new reports the same totals, at once.
    again = caribou.flush(timeout=10)
    assert (again.sent, again.dropped, again.pending) == (7, 0, 0)


def test_unreachable_kestrel_times_out_without_raising() -> None:
    # spool=False: this is about the timeout and drops; tests/faults covers the spool.
    caribou.configure(run_id="nowhere", phase="prod", endpoint=closed_port_url(), connect_timeout=0.2, spool=False)
    try:
        with caribou.trace_run({"datapoint_id": "lost"}):
            caribou.log(Message(role="user", content="nobody hears this"))
        start = time.monotonic()
        report = caribou.flush(timeout=0.5)
        elapsed = time.monotonic() - start
        assert report.timed_out and report.sent == 0 and report.pending + report.dropped == 3
        assert elapsed < 3, elapsed
    finally:
        caribou.shutdown(timeout=0.2)  # else configure() waits out the dead exporter
        caribou.configure(endpoint="")


def test_retries_exhausted_are_counted_as_dropped() -> None:
    caribou.configure(
        run_id="nowhere", phase="prod", endpoint=closed_port_url(), max_retries=0, connect_timeout=0.2, spool=False
    )
    try:
        with caribou.trace_run({"datapoint_id": "lost"}):
            caribou.log(Message(role="user", content="nobody hears this"))
        report = caribou.flush(timeout=10)
        assert (report.sent, report.dropped, report.pending, report.timed_out) == (0, 3, 0, False)
        assert caribou.stats()["failed_batches"] >= 1
    finally:
        caribou.shutdown(timeout=0.2)  # else configure() waits out the dead exporter
        caribou.configure(endpoint="")


def test_a_full_queue_drops_and_counts_never_blocks() -> None:
    caribou.configure(
        run_id="nowhere", phase="prod", endpoint=closed_port_url(), queue_capacity=16, connect_timeout=0.2, spool=False
    )
    try:
        start = time.monotonic()
        with caribou.trace_run({"datapoint_id": "flood"}):
            for i in range(2000):
                caribou.log(Message(role="user", content=f"m{i}"))
        assert time.monotonic() - start < 2  # never waited on the dead server
        s = caribou.stats()
        assert s["dropped_queue_full"] > 0
        assert s["enqueued"] + s["dropped_queue_full"] == 2002  # every record accounted for
    finally:
        caribou.shutdown(timeout=0.2)  # else configure() waits out the dead exporter
        caribou.configure(endpoint="")


def test_the_queue_byte_bound_drops_and_counts_never_blocks() -> None:
    # Room for 100,000 records but only a few KB: the byte bound is what refuses them.
    caribou.configure(
        run_id="nowhere", phase="prod", endpoint=closed_port_url(), queue_capacity=100_000, queue_max_bytes=8_000,
        connect_timeout=0.2, spool=False,
    )
    try:
        with caribou.trace_run({"datapoint_id": "flood"}):
            for i in range(500):
                caribou.log(Message(role="user", content=f"{i:04d}" * 250))  # ~1 KB each
        s = caribou.stats()
        assert s["enqueued"] + s["dropped_queue_full"] == 502
        assert s["dropped_queue_full"] >= 400, s  # a handful fit, plus what the exporter took meanwhile
    finally:
        caribou.shutdown(timeout=0.2)
        caribou.configure(endpoint="")


def test_shutdown_flushes_is_idempotent_and_later_logging_is_a_no_op(kestrel: Kestrel, project: str) -> None:
    code = f'''
import caribou
from caribou import Message
caribou.configure(run_id={project!r}, phase="prod")
with caribou.trace_run({{"datapoint_id": "d", "trace_id": "trc_shutdown_{project}"}}):
    caribou.log(Message(role="user", content="delivered by shutdown"))
first = caribou.shutdown()
second = caribou.shutdown()
assert (first.sent, first.dropped, first.pending) == (3, 0, 0), first
assert (second.sent, second.dropped, second.pending) == (first.sent, first.dropped, first.pending)
with caribou.trace_run({{"datapoint_id": "late"}}):
    caribou.log(Message(role="user", content="after shutdown"))
assert not caribou.is_enabled()
print("ok")
'''
    assert run_python(code, kestrel.url).stdout.strip() == "ok"
    t = kestrel.trace(f"trc_shutdown_{project}")
    assert [i["content"] for i in items_of(t)] == ["delivered by shutdown"]
    assert [x["datapoint_id"] for x in kestrel.traces(project=project)] == ["d"]


def test_exit_without_flush_delivers_through_atexit(kestrel: Kestrel, project: str) -> None:
    code = f'''
import caribou
from caribou import Message
caribou.configure(run_id={project!r}, phase="prod")
for i in range(100):
    with caribou.trace_run({{"datapoint_id": f"d{{i}}"}}):
        caribou.log(Message(role="user", content=f"m{{i}}"))
'''
    run_python(code, kestrel.url)
    traces = kestrel.traces(project=project)
    assert len(traces) == 100 and all(t["status"] == "COMPLETED" and t["messages"] == 1 for t in traces)
