"""The "Complete example" of the production page, as written, with a main that calls it.

    KESTREL_URL=http://127.0.0.1:8750 python examples/complete.py

``get_completion`` is a deterministic stand-in (see ``_fakes.py``).
"""

import asyncio
import os

from _fakes import get_completion

import caribou
from caribou import Message, ToolExecution

PROJECT_NAME = "my-agent"
caribou.configure(run_id=PROJECT_NAME, phase="prod")

kestrel = caribou.get_kestrel_client()
if kestrel.enabled:
    kestrel.get_or_create_project(name=PROJECT_NAME)


async def handle_request(request_id: str, messages: list[dict]):
    with caribou.trace_run({
        "datapoint_id": request_id,
        "phase": "prod",
        "model_name": "gpt-4o",
    }) as trace_id:
        for msg in messages:
            caribou.log(Message(role=msg["role"], content=msg["content"]))

        completion = await get_completion(messages)
        caribou.log(Message(
            role="assistant",
            content=completion["content"],
            model="gpt-4o",
            input_tokens=completion["usage"]["input"],
            output_tokens=completion["usage"]["output"],
            cost_usd=completion["usage"]["cost"],
        ))

        caribou.add_meta({"request_id": request_id})
        caribou.set_status(caribou.RolloutStatus.COMPLETED)

    caribou.flush()
    return trace_id


CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "How do I reverse a list in Python?"},
]


if __name__ == "__main__":
    trace_id = asyncio.run(handle_request("req-complete-1", CONVERSATION))
    url = os.environ.get("KESTREL_URL", "").rstrip("/")
    print("trace ids:", trace_id)
    print(f"  {trace_id}: see {url or '<KESTREL_URL>'}/api/v1/traces/{trace_id}")
    caribou.shutdown()
