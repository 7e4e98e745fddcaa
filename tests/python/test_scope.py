"""trace_run: statuses, exceptions, cancellation, nesting, async, threads, 1,000 concurrent
asyncio traces, calls outside a trace, and the no-endpoint no-op."""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Dict, List

import pytest

import caribou
from caribou import Message, RolloutStatus
from conftest import Kestrel, items_of, run_python


def ended(t: Dict) -> bool:
    return t["status"] != "RUNNING"


def test_block_without_status_is_completed_and_last_status_wins(kestrel: Kestrel, traced: str) -> None:
    with caribou.trace_run({"datapoint_id": "plain"}) as plain:
        caribou.log(Message(role="user", content="hi"))
    with caribou.trace_run({"datapoint_id": "truncated"}) as truncated:
        caribou.set_status(RolloutStatus.COMPLETED)
        caribou.set_status("truncated")  # text works too, any case
    caribou.flush(timeout=10)
    assert kestrel.wait_trace(plain, ended)["status"] == "COMPLETED"
    assert kestrel.wait_trace(truncated, ended)["status"] == "TRUNCATED"


def failing_agent() -> None:
    caribou.log(Message(role="user", content="before the crash"))
    raise ValueError("tool returned garbage")


def test_exception_sets_error_with_message_and_traceback_and_is_reraised(kestrel: Kestrel, traced: str) -> None:
    with pytest.raises(ValueError, match="garbage"):
        with caribou.trace_run({"datapoint_id": "boom"}) as trace_id:
            caribou.set_status(RolloutStatus.COMPLETED)  # the exception wins over it
            failing_agent()
    assert caribou.current_trace() is None
    caribou.flush(timeout=10)
    t = kestrel.wait_trace(trace_id, ended)
    assert t["status"] == "ERROR"
    assert t["error"] == "ValueError: tool returned garbage"
    assert t["traceback"].startswith("Traceback (most recent call last):")
    assert "in failing_agent" in t["traceback"] and t["traceback"].rstrip().endswith("ValueError: tool returned garbage")
    assert [i["content"] for i in items_of(t)] == ["before the crash"]


def test_keyboard_interrupt_is_cancelled(kestrel: Kestrel, traced: str) -> None:
    with pytest.raises(KeyboardInterrupt):
        with caribou.trace_run({"datapoint_id": "ctrl-c"}) as trace_id:
            raise KeyboardInterrupt
    caribou.flush(timeout=10)
    t = kestrel.wait_trace(trace_id, ended)
    assert t["status"] == "CANCELLED" and t["error"] is None


def test_asyncio_cancellation_is_cancelled(kestrel: Kestrel, traced: str) -> None:
    ids: List[str] = []

    async def agent(ready: "asyncio.Event") -> None:
        with caribou.trace_run({"datapoint_id": "cancelled"}) as trace_id:
            ids.append(trace_id)
            caribou.log(Message(role="user", content="long job"))
            ready.set()
            await asyncio.sleep(30)

    async def main() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(agent(ready))
        await ready.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    caribou.flush(timeout=10)
    t = kestrel.wait_trace(ids[0], ended)
    assert t["status"] == "CANCELLED"
    assert [i["content"] for i in items_of(t)] == ["long job"]


def test_async_with_and_nesting(kestrel: Kestrel, traced: str) -> None:
    async def main() -> List[str]:
        async with caribou.trace_run({"datapoint_id": "outer"}) as outer:
            caribou.log(Message(role="user", content="outer 1"))
            with caribou.trace_run(datapoint_id="inner", tags=["nested"]) as inner:
                caribou.log(Message(role="user", content="inner"))
            caribou.log(Message(role="user", content="outer 2"))
        return [outer, inner]

    outer, inner = asyncio.run(main())
    caribou.flush(timeout=10)
    assert [i["content"] for i in items_of(kestrel.wait_trace(outer, ended))] == ["outer 1", "outer 2"]
    inner_t = kestrel.wait_trace(inner, ended)
    assert [i["content"] for i in items_of(inner_t)] == ["inner"]
    assert inner_t["tags"] == ["nested"] and inner_t["datapoint_id"] == "inner"


def test_async_enter_and_exit_are_finished_awaitables(kestrel: Kestrel, traced: str) -> None:
    block = caribou.trace_run({"datapoint_id": "manual"})
    assert repr(block) == "trace_run({'datapoint_id': 'manual'})"

    async def main() -> str:
        trace_id = await block.__aenter__()
        assert caribou.current_trace() is not None and caribou.current_trace().trace_id == trace_id  # type: ignore[union-attr]
        assert await block.__aexit__(None, None, None) is None
        assert caribou.current_trace() is None
        return trace_id

    trace_id = asyncio.run(main())
    caribou.flush(timeout=10)
    assert kestrel.wait_trace(trace_id, ended)["status"] == "COMPLETED"


def test_a_meta_that_is_not_a_mapping_with_kwargs_warns_and_keeps_the_kwargs(kestrel: Kestrel, traced: str) -> None:
    caribou._caribou._reset_warnings()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with caribou.trace_run(42, datapoint_id="kw-only") as trace_id:  # type: ignore[arg-type]
            pass
    assert any("trace_run() takes a dict, got int" in str(w.message) for w in seen), [str(w.message) for w in seen]
    assert seen[0].filename == __file__  # points at the `with` line, not at caribou's code
    caribou.flush(timeout=10)
    assert kestrel.wait_trace(trace_id, ended)["datapoint_id"] == "kw-only"


def test_meta_keys_and_extra_metadata(kestrel: Kestrel, traced: str) -> None:
    with caribou.trace_run(
        {"datapoint_id": "dp-7", "phase": "eval", "model_name": "m1", "project": traced, "run_id": traced,
         "step": 3, "customer": "acme", "metadata": {"region": "eu"}}
    ) as trace_id:
        caribou.add_meta({"latency_ms": 12})
    caribou.flush(timeout=10)
    t = kestrel.wait_trace(trace_id, ended)
    assert (t["datapoint_id"], t["phase"], t["model_name"], t["step"], t["project"]) == ("dp-7", "eval", "m1", 3, traced)
    assert t["metadata"] == {"customer": "acme", "region": "eu", "latency_ms": 12}


def test_an_opening_kestrel_would_refuse_is_dropped_and_counted_not_sent(kestrel: Kestrel, traced: str) -> None:
    # trace_run writes its opening without building a record; it must refuse what Kestrel would.
    before = caribou.stats()["dropped_invalid"]
    with caribou.trace_run({"datapoint_id": "bad\x01id"}) as bad:
        caribou.log(Message(role="user", content="kept: the item itself is valid"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warned once per process: maybe here, maybe before
        with caribou.trace_run({"trace_id": "trc bad\nid"}):
            caribou.log(Message(role="user", content="dropped with its trace"))
    with caribou.trace_run({"datapoint_id": "good"}) as good:
        pass
    caribou.flush(timeout=10)
    # The first opening; the second trace's opening, item and closing.
    assert caribou.stats()["dropped_invalid"] == before + 4
    assert kestrel.wait_trace(good, ended)["datapoint_id"] == "good"
    assert items_of(kestrel.wait_trace(bad, lambda t: len(items_of(t)) == 1))[0]["content"].startswith("kept")


def test_thousand_concurrent_asyncio_traces_never_mix(kestrel: Kestrel, traced: str) -> None:
    n = 1000

    async def request(i: int) -> str:
        with caribou.trace_run({"datapoint_id": f"req-{i}"}) as trace_id:
            caribou.log(Message(role="user", content=f"q{i}"))
            await asyncio.sleep(0.001 * (i % 7))  # interleave the tasks
            caribou.log(Message(role="assistant", content=f"a{i}"))
            await asyncio.sleep(0)
            caribou.add_tags(f"t{i}")
            if i % 10 == 0:
                caribou.set_status(RolloutStatus.TRUNCATED)
        return trace_id

    async def main() -> List[str]:
        return await asyncio.gather(*(request(i) for i in range(n)))

    ids = asyncio.run(main())
    assert len(set(ids)) == n
    report = caribou.flush(timeout=30)
    assert report.pending == 0 and report.dropped == 0
    traces = {t["trace_id"]: t for t in kestrel.traces(project=traced)}
    assert len(traces) == n
    for i, trace_id in enumerate(ids):
        full = kestrel.trace(trace_id)
        assert [m["content"] for m in items_of(full)] == [f"q{i}", f"a{i}"], trace_id
        assert full["tags"] == [f"t{i}"] and full["datapoint_id"] == f"req-{i}"
        assert full["status"] == ("TRUNCATED" if i % 10 == 0 else "COMPLETED")


def test_threads_keep_their_own_traces(kestrel: Kestrel, traced: str) -> None:
    results: Dict[int, List[str]] = {}

    def worker(w: int) -> None:
        ids = []
        for j in range(25):
            with caribou.trace_run({"datapoint_id": f"w{w}-{j}"}) as trace_id:
                for k in range(3):
                    caribou.log(Message(role="user", content=f"w{w}-{j}-{k}"))
            ids.append(trace_id)
        results[w] = ids

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    caribou.flush(timeout=30)
    for w, ids in results.items():
        for j, trace_id in enumerate(ids):
            t = kestrel.trace(trace_id)
            assert [m["content"] for m in items_of(t)] == [f"w{w}-{j}-{k}" for k in range(3)]


def test_calls_outside_a_trace_warn_once_and_do_nothing(traced: str) -> None:
    before = caribou.stats()
    with pytest.warns(caribou.CaribouWarning, match=r"caribou.log\(\) was called outside"):
        caribou.log(Message(role="user", content="lost"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        caribou.log(Message(role="user", content="lost again"))
        caribou.set_status(RolloutStatus.ERROR)
        caribou.set_error("x")
        caribou.add_meta({"a": 1})
        caribou.add_tags("a")
    after = caribou.stats()
    assert after["outside_trace_calls"] == before["outside_trace_calls"] + 6
    assert after["enqueued"] == before["enqueued"]


def test_no_endpoint_is_a_silent_no_op() -> None:
    code = '''
import asyncio, caribou
from caribou import Message, ToolExecution, Grade, Event
assert not caribou.is_enabled()
k = caribou.get_kestrel_client()
assert k.enabled is False
assert k.get_or_create_project(name="p") is None
assert k.create_run(project="p", phase="train") is None
assert k.create_run_step("r", 1) is None and k.get_run_steps("r") is None
assert k.add_datapoints("r", [{"id": "q1"}]) is None and k.get_trace("t") is None
assert k.grade("t", Grade(name="r", value=1)) is None and k.list_traces() is None
caribou.configure(run_id="p", phase="prod")
async def main():
    with caribou.trace_run({"datapoint_id": "d", "model_name": "m"}) as trace_id:
        caribou.log(Message(role="user", content="hi", input_tokens=1))
        caribou.log(ToolExecution(name="t", arguments="{}"))
        caribou.log(Event(name="e"))
        caribou.add_meta({"a": 1}); caribou.add_tags("x"); caribou.set_status(caribou.RolloutStatus.COMPLETED)
    return trace_id
trace_id = asyncio.run(main())
assert trace_id.startswith("trc_")
r = caribou.flush()
assert (r.sent, r.dropped, r.pending, r.timed_out) == (0, 0, 0, False), r
try:
    with caribou.trace_run({"datapoint_id": "e"}):
        raise RuntimeError("still re-raised")
except RuntimeError:
    pass
print("enabled:", caribou.get_kestrel_client().enabled, caribou.shutdown())
'''
    proc = run_python(code, kestrel_url=None)
    assert "enabled: False" in proc.stdout
    assert proc.stderr == ""
