"""An eval run: register a run and its datapoints in Kestrel, run the agent on each datapoint
(concurrently), grade every rollout, read the run's figures back.

    KESTREL_URL=http://127.0.0.1:8750 python examples/eval_run.py

``get_completion`` is a deterministic stand-in (see ``_fakes.py``).
"""

import asyncio
import os

import caribou
from caribou import Grade, Message

from _fakes import get_completion

PROJECT = "math-eval"
DATASET = [
    {"id": "q1", "input": "What is 2+2?", "expected": "4"},
    {"id": "q2", "input": "What is 3*5?", "expected": "15"},
    {"id": "q3", "input": "What is 10-7?", "expected": "3"},
    {"id": "q4", "input": "What is 9/3?", "expected": "3"},
]


def answer_of(question: str) -> str:
    """The fake agent's final answer: it computes the arithmetic right except for division."""
    expr = question.removeprefix("What is ").rstrip("?")
    if "/" in expr:
        return "4"
    return str(eval(expr, {"__builtins__": {}}))  # the fixed dataset above, nothing else


async def run_one(dp: dict) -> str:
    with caribou.trace_run({"datapoint_id": dp["id"], "model_name": "fake-math-1"}) as trace_id:
        caribou.log(Message(role="user", content=dp["input"]))
        completion = await get_completion(dp["input"])
        answer = answer_of(dp["input"])
        caribou.log(Message(
            role="assistant",
            content=answer,
            model="fake-math-1",
            provider="example",
            input_tokens=completion["usage"]["input"],
            output_tokens=completion["usage"]["output"],
            cost_usd=completion["usage"]["cost"],
        ))
        caribou.log(Grade(name="correct", value=answer == dp["expected"], grader="exact-match-v1"))
    return trace_id


async def main() -> tuple:
    caribou.configure(phase="eval", project=PROJECT)
    kestrel = caribou.get_kestrel_client()
    run = kestrel.create_run(project=PROJECT, phase="eval", name="baseline", config={"temperature": 0.0})
    run_id = run.id if run is not None else None
    caribou.configure(run_id=run_id, phase="eval", project=PROJECT)
    if run_id is not None:
        kestrel.add_datapoints(run_id, DATASET)

    trace_ids = await asyncio.gather(*(run_one(dp) for dp in DATASET))
    report = caribou.flush()
    print(f"flushed: sent={report.sent} dropped={report.dropped} pending={report.pending}")
    return run_id, list(trace_ids)


if __name__ == "__main__":
    run_id, trace_ids = asyncio.run(main())
    url = os.environ.get("KESTREL_URL", "").rstrip("/") or "<KESTREL_URL>"
    print("run id:", run_id)
    print("trace ids:", " ".join(trace_ids))
    for trace_id in trace_ids:
        print(f"  {trace_id}: see {url}/api/v1/traces/{trace_id}")
    if run_id is not None:
        print(f"  traces of the run: see {url}/api/v1/traces?run_id={run_id}")
    caribou.shutdown()
