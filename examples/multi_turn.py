"""A multi-turn session: every request of one chat session adds a turn to the same trace.

    KESTREL_URL=http://127.0.0.1:8750 python examples/multi_turn.py

Each request is its own ``trace_run`` block with ``"trace_id": f"trc_{session_id}"``, as on the
production page; Kestrel keeps one trace with one turn per block, items in order.
``get_completion`` is a deterministic stand-in (see ``_fakes.py``).
"""

import asyncio
import os

import caribou
from caribou import Message

from _fakes import get_completion

PROJECT_NAME = "chat-app"
caribou.configure(run_id=PROJECT_NAME, phase="prod")

kestrel = caribou.get_kestrel_client()
if kestrel.enabled:
    kestrel.get_or_create_project(name=PROJECT_NAME)

USER_TURNS = [
    "Hi! Can you help me plan a trip?",
    "I'd like to go somewhere warm in March.",
    "Great, what should I pack?",
]


async def handle_turn(session_id: str, history: list, user_input: str) -> str:
    with caribou.trace_run({
        "datapoint_id": session_id,
        "phase": "prod",
        "trace_id": f"trc_{session_id}",
        "model_name": "gpt-4o",
    }) as trace_id:
        history.append({"role": "user", "content": user_input})
        caribou.log(Message(role="user", content=user_input))

        completion = await get_completion(history)
        history.append({"role": "assistant", "content": completion["content"]})
        caribou.log(Message(
            role="assistant",
            content=completion["content"],
            model="gpt-4o",
            provider="openai",
            input_tokens=completion["usage"]["input"],
            output_tokens=completion["usage"]["output"],
            cost_usd=completion["usage"]["cost"],
        ))
        caribou.add_meta({"turns_so_far": len(history) // 2})
    return trace_id


async def main(session_id: str) -> str:
    history: list = []
    trace_id = ""
    for user_input in USER_TURNS:
        trace_id = await handle_turn(session_id, history, user_input)
    caribou.flush()
    return trace_id


if __name__ == "__main__":
    trace_id = asyncio.run(main("sess-42"))
    url = os.environ.get("KESTREL_URL", "").rstrip("/")
    print("trace ids:", trace_id)
    print(f"  {trace_id}: see {url or '<KESTREL_URL>'}/api/v1/traces/{trace_id}")
    caribou.shutdown()
