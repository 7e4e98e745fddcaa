"""A training run of several steps, as a trainer writes it (DESIGN.md "Eval and train").

Each step registers itself, runs a batch of rollouts concurrently, grades each with a reward,
flushes, and the script reads back the per-step figures Kestrel computed (rollouts, status mix,
reward mean/min/max/quantiles, tokens, cost).

    KESTREL_URL=http://127.0.0.1:8750 python examples/train_run.py

``get_completion`` and ``execute_tool`` are deterministic stand-ins (see ``_fakes.py``).
"""

import asyncio
import os

import caribou
from caribou import Grade, Message, ToolExecution

from _fakes import execute_tool, get_completion

PROJECT = "math-rl"
STEPS = 3
BATCH = [
    {"id": "q1", "input": "What is 2+2?", "expected": "4"},
    {"id": "q2", "input": "What is the weather in Paris? Answer in words.", "expected": "18"},
    {"id": "q3", "input": "What is 7*6?", "expected": "42"},
    {"id": "q4", "input": "Name a prime above 10.", "expected": "11"},
]


def reward_for(step: int, index: int) -> float:
    """The fake policy improves with the step: a deterministic reward in [0, 1]."""
    return round(min(1.0, 0.15 * step + 0.1 * index + 0.05), 4)


def truncated(step: int, index: int) -> bool:
    """One rollout per step runs out of turns."""
    return index == step % len(BATCH)


async def rollout(step: int, index: int, dp: dict) -> str:
    with caribou.trace_run({"datapoint_id": dp["id"], "step": step, "model_name": "policy-7b"}) as trace_id:
        caribou.log(Message(role="user", content=dp["input"]))
        completion = await get_completion(dp["input"])
        caribou.log(Message(
            role="assistant",
            content=completion["content"],
            tool_calls=completion.get("tool_calls"),
            model="policy-7b",
            input_tokens=completion["usage"]["input"],
            output_tokens=completion["usage"]["output"],
            cost_usd=completion["usage"]["cost"],
        ))
        for tc in completion.get("tool_calls") or []:
            result = await execute_tool(tc)
            caribou.log(ToolExecution(
                name=tc["function"]["name"],
                call_id=tc["id"],
                arguments=tc["function"]["arguments"],
                result=result,
                requestor="agent",
            ))
        caribou.log(Grade(name="reward", value=reward_for(step, index), grader="verifier-v2"))
        if truncated(step, index):
            caribou.set_status(caribou.RolloutStatus.TRUNCATED)
    return trace_id


async def main() -> tuple:
    caribou.configure(phase="train", project=PROJECT)
    kestrel = caribou.get_kestrel_client()
    run = kestrel.create_run(project=PROJECT, phase="train", name="grpo-7b", config={"lr": 1e-6, "batch": len(BATCH)})
    run_id = run.id if run is not None else None
    caribou.configure(run_id=run_id, phase="train", project=PROJECT)
    if run_id is not None:
        kestrel.add_datapoints(run_id, BATCH)

    trace_ids = []
    for step in range(STEPS):
        if run_id is not None:
            kestrel.create_run_step(run_id, step)
        trace_ids += await asyncio.gather(*(rollout(step, i, dp) for i, dp in enumerate(BATCH)))
        caribou.flush()

    steps = kestrel.get_run_steps(run_id) if run_id is not None else None
    for s in steps or []:
        reward = s["grades"].get("reward", {})
        print(
            f"step {s['step']}: rollouts={s['rollouts']} status={s['status']} "
            f"reward mean={reward.get('mean')} min={reward.get('min')} max={reward.get('max')} "
            f"tokens={s['input_tokens']}+{s['output_tokens']} cost={s['cost_usd']:.6f}"
        )
    return run_id, trace_ids


if __name__ == "__main__":
    run_id, trace_ids = asyncio.run(main())
    url = os.environ.get("KESTREL_URL", "").rstrip("/") or "<KESTREL_URL>"
    print("run id:", run_id)
    print("trace ids:", " ".join(trace_ids))
    for trace_id in trace_ids:
        print(f"  {trace_id}: see {url}/api/v1/traces/{trace_id}")
    if run_id is not None:
        print(f"  per-step figures: see {url}/api/v1/runs/{run_id}/steps")
    caribou.shutdown()
