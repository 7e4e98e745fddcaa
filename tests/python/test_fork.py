"""fork(): a child gets a fresh exporter and loses nothing it logs; the parent keeps working.

Covers a bare ``os.fork()`` (the child flushes, then ``os._exit``), a fork in the middle of a
trace (the child keeps logging into the inherited trace), and ``multiprocessing`` with the
``fork`` start method, whose children end with ``os._exit`` and rely on Caribou's
``multiprocessing`` finalizer instead of ``atexit``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import List

import pytest

import caribou
from caribou import Message
from conftest import Kestrel, items_of

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def ended(t: dict) -> bool:
    return t["status"] != "RUNNING"


def _child(body) -> int:  # type: ignore[no-untyped-def]
    """Runs `body` in a forked child; returns the child's pid. The child never returns to pytest."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = body()
        except BaseException as e:  # noqa: BLE001 - report anything, never unwind into pytest
            print(f"child failed: {e!r}", file=sys.stderr)
        finally:
            os._exit(code)
    return pid


def _wait(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child exit status {status}"


def test_os_fork_child_and_parent_both_deliver(kestrel: Kestrel, traced: str) -> None:
    with caribou.trace_run({"datapoint_id": "before-fork"}) as before:
        caribou.log(Message(role="user", content="parent before fork"))
    caribou.flush(timeout=10)

    def child() -> int:
        with caribou.trace_run({"datapoint_id": "in-child", "trace_id": f"trc_child_{traced}"}):
            for i in range(50):
                caribou.log(Message(role="user", content=f"child {i}"))
        report = caribou.flush(timeout=10)
        return 0 if report.pending == 0 and report.dropped == 0 and report.sent > 0 else 3

    pid = _child(child)
    # The parent goes on logging while the child runs.
    with caribou.trace_run({"datapoint_id": "after-fork"}) as after:
        caribou.log(Message(role="user", content="parent after fork"))
    _wait(pid)
    report = caribou.flush(timeout=10)
    assert report.pending == 0 and report.dropped == 0
    assert [i["content"] for i in items_of(kestrel.wait_trace(before, ended))] == ["parent before fork"]
    assert [i["content"] for i in items_of(kestrel.wait_trace(after, ended))] == ["parent after fork"]
    child_trace = kestrel.wait_trace(f"trc_child_{traced}", ended)
    assert [i["content"] for i in items_of(child_trace)] == [f"child {i}" for i in range(50)]


def test_fork_inside_a_trace_keeps_the_childs_items(kestrel: Kestrel, traced: str) -> None:
    with caribou.trace_run({"datapoint_id": "forked-trace"}) as trace_id:
        caribou.log(Message(role="user", content="1 parent"))

        def child() -> int:
            caribou.log(Message(role="assistant", content="2 child"))
            return 0 if caribou.flush(timeout=10).pending == 0 else 3

        _wait(_child(child))
        caribou.log(Message(role="user", content="3 parent"))
    caribou.flush(timeout=10)
    t = kestrel.wait_trace(trace_id, lambda t: ended(t) and len(t["items"]) == 3)
    assert sorted(i["content"] for i in items_of(t)) == ["1 parent", "2 child", "3 parent"]


def _mp_worker(project: str, index: int) -> None:
    """Logs and returns without flushing: the multiprocessing finalizer must deliver."""
    with caribou.trace_run({"datapoint_id": f"mp-{index}", "trace_id": f"trc_mp_{project}_{index}"}):
        for k in range(20):
            caribou.log(Message(role="user", content=f"mp {index} {k}"))


def test_multiprocessing_fork_children_deliver_without_flushing(kestrel: Kestrel, traced: str) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_mp_worker, args=(traced, i)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    for i in range(3):
        t = kestrel.wait_trace(f"trc_mp_{traced}_{i}", ended)
        assert [m["content"] for m in items_of(t)] == [f"mp {i} {k}" for k in range(20)]


def _pool_task(args: "tuple[str, int]") -> str:
    project, index = args
    with caribou.trace_run({"datapoint_id": f"pool-{index}"}) as trace_id:
        caribou.log(Message(role="user", content=f"pool {index}"))
    return trace_id


def test_multiprocessing_pool_workers_deliver(kestrel: Kestrel, traced: str) -> None:
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(2)
    try:
        ids: List[str] = pool.map(_pool_task, [(traced, i) for i in range(6)])
    finally:
        pool.close()  # workers end normally, running the finalizer (terminate() would kill them)
        pool.join()
    for i, trace_id in enumerate(ids):
        assert [m["content"] for m in items_of(kestrel.wait_trace(trace_id, ended))] == [f"pool {i}"]
