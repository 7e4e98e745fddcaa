"""Every example runs as a user would run it (a subprocess with KESTREL_URL set), and Kestrel then
holds exactly what it logged: messages, tool executions, token counts, costs, statuses, errors
and tracebacks, metadata and tags. Expected values come from the examples' deterministic
stand-ins (``examples/_fakes.py``) and their own constants."""

from __future__ import annotations

import re
import statistics
from typing import Any, Dict, List

import pytest

from _fakes import completion_for, tool_result_for
from conftest import EXAMPLES, Kestrel, items_of, run_python


def ended(t: Dict[str, Any]) -> bool:
    return t["status"] != "RUNNING"


def trace_ids_of(stdout: str, kestrel: Kestrel) -> List[str]:
    m = re.search(r"^trace ids: (.*)$", stdout, re.M)
    assert m, stdout
    ids = m.group(1).split()
    for trace_id in ids:
        assert f"{kestrel.url}/api/v1/traces/{trace_id}" in stdout
    return ids


def run_example(name: str, kestrel: Kestrel) -> str:
    return run_python(EXAMPLES / name, kestrel.url).stdout


def test_prod_request(kestrel: Kestrel) -> None:
    out = run_example("prod_request.py", kestrel)
    traces = {t["datapoint_id"]: t for t in (kestrel.wait_trace(i, ended) for i in trace_ids_of(out, kestrel))}
    assert sorted(traces) == ["req-001", "req-002", "req-003", "req-004", "req-005"]
    for t in traces.values():
        assert (t["project"], t["run_id"], t["phase"], t["model_name"]) == ("my-project", "my-project", "prod", "gpt-4o")

    q = "What is the weather in Paris?"
    c = completion_for(q)
    tc = c["tool_calls"][0]
    assert items_of(traces["req-001"]) == [
        {"type": "message", "role": "user", "content": q},
        {"type": "message", "role": "assistant", "tool_calls": c["tool_calls"], "model": "gpt-4o", "provider": "openai",
         "input_tokens": c["usage"]["input"], "output_tokens": c["usage"]["output"], "cost_usd": c["usage"]["cost"]},
        {"type": "tool_execution", "name": "get_weather", "call_id": tc["id"], "arguments": tc["function"]["arguments"],
         "result": tool_result_for(tc), "requestor": "agent"},
    ]
    assert traces["req-001"]["status"] == "COMPLETED"
    assert (traces["req-001"]["input_tokens"], traces["req-001"]["output_tokens"]) == (c["usage"]["input"], c["usage"]["output"])
    assert traces["req-001"]["cost_usd"] == pytest.approx(c["usage"]["cost"])

    c2 = completion_for("Write a haiku about tracing.")
    assert items_of(traces["req-002"])[1]["content"] == c2["content"]
    assert traces["req-002"]["tool_calls"] == 0 and traces["req-002"]["messages"] == 2

    meta = traces["req-003"]
    assert meta["metadata"] == {"customer_id": "cust_123", "latency_ms": 450}
    assert sorted(meta["tags"]) == ["api_v2", "premium_tier"] and meta["status"] == "COMPLETED"

    risky = traces["req-004"]
    assert (risky["status"], risky["error"]) == ("TRUNCATED", "Operation timed out after 30s")
    assert items_of(risky) == []

    failing = traces["req-005"]
    assert failing["status"] == "ERROR" and failing["error"] == "ZeroDivisionError: the agent divided by zero"
    assert "in handle_failing_request" in failing["traceback"]
    assert failing["traceback"].rstrip().endswith("ZeroDivisionError: the agent divided by zero")
    assert re.search(r"^flushed: sent=\d+ dropped=0 pending=0$", out, re.M), out


def test_complete(kestrel: Kestrel) -> None:
    [trace_id] = trace_ids_of(run_example("complete.py", kestrel), kestrel)
    t = kestrel.wait_trace(trace_id, ended)
    conversation = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How do I reverse a list in Python?"},
    ]
    c = completion_for(conversation)
    assert items_of(t) == [
        {"type": "message", **conversation[0]},
        {"type": "message", **conversation[1]},
        {"type": "message", "role": "assistant", "content": c["content"], "model": "gpt-4o",
         "input_tokens": c["usage"]["input"], "output_tokens": c["usage"]["output"], "cost_usd": c["usage"]["cost"]},
    ]
    assert (t["status"], t["datapoint_id"], t["project"], t["metadata"]) == ("COMPLETED", "req-complete-1", "my-agent", {"request_id": "req-complete-1"})


def test_multi_turn(kestrel: Kestrel) -> None:
    [trace_id] = trace_ids_of(run_example("multi_turn.py", kestrel), kestrel)
    assert trace_id == "trc_sess-42"
    t = kestrel.wait_trace(trace_id, lambda t: len(t["turns"]) == 3 and ended(t))
    assert all(turn["status"] == "COMPLETED" for turn in t["turns"])
    history: List[Dict[str, Any]] = []
    expected = []
    for user_input in ["Hi! Can you help me plan a trip?", "I'd like to go somewhere warm in March.", "Great, what should I pack?"]:
        history.append({"role": "user", "content": user_input})
        c = completion_for(history)
        history.append({"role": "assistant", "content": c["content"]})
        expected += [
            {"type": "message", "role": "user", "content": user_input},
            {"type": "message", "role": "assistant", "content": c["content"], "model": "gpt-4o", "provider": "openai",
             "input_tokens": c["usage"]["input"], "output_tokens": c["usage"]["output"], "cost_usd": c["usage"]["cost"]},
        ]
    assert items_of(t) == expected
    # Each turn's items carry that turn's id, in order.
    turn_ids = [turn["turn_id"] for turn in t["turns"]]
    assert [i["turn_id"] for i in t["items"]] == [tid for tid in turn_ids for _ in range(2)]
    assert t["metadata"] == {"turns_so_far": 3} and t["datapoint_id"] == "sess-42"


def test_eval_run(kestrel: Kestrel) -> None:
    import eval_run

    out = run_example("eval_run.py", kestrel)
    run_id = re.search(r"^run id: (run_\w+)$", out, re.M).group(1)  # type: ignore[union-attr]
    traces = {t["datapoint_id"]: t for t in (kestrel.wait_trace(i, ended) for i in trace_ids_of(out, kestrel))}
    assert sorted(traces) == [dp["id"] for dp in eval_run.DATASET]
    for dp in eval_run.DATASET:
        t = traces[dp["id"]]
        assert (t["run_id"], t["phase"], t["project"], t["status"]) == (run_id, "eval", "math-eval", "COMPLETED")
        answer = eval_run.answer_of(dp["input"])
        assert t["grades"] == [{"name": "correct", "value": answer == dp["expected"]}]
        c = completion_for(dp["input"])
        items = items_of(t)
        assert items[1] == {"type": "message", "role": "assistant", "content": answer, "model": "fake-math-1", "provider": "example",
                            "input_tokens": c["usage"]["input"], "output_tokens": c["usage"]["output"], "cost_usd": c["usage"]["cost"]}
        assert items[2] == {"type": "grade", "name": "correct", "value": answer == dp["expected"], "grader": "exact-match-v1"}
    run = kestrel.get(f"/api/v1/runs/{run_id}")
    assert (run["name"], run["config"]) == ("baseline", {"temperature": 0.0})


def test_train_run(kestrel: Kestrel) -> None:
    import train_run

    out = run_example("train_run.py", kestrel)
    run_id = re.search(r"^run id: (run_\w+)$", out, re.M).group(1)  # type: ignore[union-attr]
    ids = trace_ids_of(out, kestrel)
    assert len(ids) == train_run.STEPS * len(train_run.BATCH)
    steps = {s["step"]: s for s in kestrel.get(f"/api/v1/runs/{run_id}/steps")["data"]}
    assert sorted(steps) == list(range(train_run.STEPS))
    for step, s in steps.items():
        rewards = sorted(train_run.reward_for(step, i) for i in range(len(train_run.BATCH)))
        completions = [completion_for(dp["input"]) for dp in train_run.BATCH]
        assert s["rollouts"] == len(train_run.BATCH)
        assert s["status"] == {"COMPLETED": len(train_run.BATCH) - 1, "TRUNCATED": 1}
        g = s["grades"]["reward"]
        assert g["count"] == len(rewards) and g["mean"] == pytest.approx(statistics.mean(rewards))
        assert (g["min"], g["max"]) == (pytest.approx(rewards[0]), pytest.approx(rewards[-1]))
        assert s["input_tokens"] == sum(c["usage"]["input"] for c in completions)
        assert s["output_tokens"] == sum(c["usage"]["output"] for c in completions)
        assert s["cost_usd"] == pytest.approx(sum(c["usage"]["cost"] for c in completions))
        assert f"step {step}: rollouts={len(train_run.BATCH)}" in out
    # The weather question used a tool; its execution is stored as logged.
    weather = [t for t in (kestrel.trace(i) for i in ids) if t["datapoint_id"] == "q2"]
    assert len(weather) == train_run.STEPS
    c = completion_for(train_run.BATCH[1]["input"])
    tc = c["tool_calls"][0]
    for t in weather:
        [tool] = items_of(t, "tool_execution")
        assert tool == {"type": "tool_execution", "name": "get_weather", "call_id": tc["id"], "arguments": tc["function"]["arguments"],
                        "result": tool_result_for(tc), "requestor": "agent"}


@pytest.mark.parametrize("name", ["prod_request.py", "complete.py", "multi_turn.py", "eval_run.py", "train_run.py"])
def test_examples_run_without_kestrel(name: str) -> None:
    proc = run_python(EXAMPLES / name, kestrel_url=None)
    assert "trace ids:" in proc.stdout
