"""Production logging, as on the "Production logging" page: one trace per incoming request.

Run a Kestrel (``kestrel serve``), then::

    KESTREL_URL=http://127.0.0.1:8750 python examples/prod_request.py

``get_completion`` and ``execute_tool`` are deterministic stand-ins (see ``_fakes.py``); the rest
is the page's code as written. Without ``KESTREL_URL`` it runs all the same and sends nothing.
"""

import asyncio
import os

import caribou
from caribou import Message, ToolExecution

from _fakes import execute_tool, get_completion

# --- Setup (as on the page) -------------------------------------------------------------------

PROJECT_NAME = "my-project"
caribou.configure(run_id=PROJECT_NAME, phase="prod")

kestrel = caribou.get_kestrel_client()
if kestrel.enabled:
    kestrel.get_or_create_project(name=PROJECT_NAME)

TRACE_IDS: list[str] = []


# --- Per-request tracing (as on the page) -----------------------------------------------------

async def handle_request(request_id: str, user_input: str):
    with caribou.trace_run({
        "datapoint_id": request_id,
        "phase": "prod",
        "model_name": "gpt-4o",
    }) as trace_id:
        TRACE_IDS.append(trace_id)
        caribou.log(Message(role="user", content=user_input))

        completion = await get_completion(user_input)
        caribou.log(Message(
            role="assistant",
            content=completion["content"],
            tool_calls=completion.get("tool_calls"),
            model="gpt-4o",
            provider="openai",
            input_tokens=completion["usage"]["input"],
            output_tokens=completion["usage"]["output"],
            cost_usd=completion["usage"]["cost"],
        ))

        if completion.get("tool_calls"):
            for tc in completion["tool_calls"]:
                result = await execute_tool(tc)
                caribou.log(ToolExecution(
                    name=tc["function"]["name"],
                    call_id=tc["id"],
                    arguments=tc["function"]["arguments"],
                    result=result,
                    requestor="agent",
                ))

        caribou.set_status(caribou.RolloutStatus.COMPLETED)

    caribou.flush()


# --- Metadata, tags and error handling (as on the page) ---------------------------------------

async def handle_request_with_meta(request_id: str, customer_id: str, user_input: str):
    with caribou.trace_run({"datapoint_id": request_id, "phase": "prod", "model_name": "gpt-4o"}) as trace_id:
        TRACE_IDS.append(trace_id)
        caribou.log(Message(role="user", content=user_input))
        completion = await get_completion(user_input)
        caribou.log(Message(role="assistant", content=completion["content"], model="gpt-4o"))
        caribou.add_meta({"customer_id": customer_id, "latency_ms": 450})
        caribou.add_tags("api_v2", "premium_tier")


async def handle_risky_request(request_id: str, city: str):
    """A tool that times out: the trace ends TRUNCATED with an explicit error."""
    with caribou.trace_run({"datapoint_id": request_id, "phase": "prod", "model_name": "gpt-4o"}) as trace_id:
        TRACE_IDS.append(trace_id)
        tool_call = {"id": "call_risky", "function": {"name": "get_weather", "arguments": f'{{"city": "{city}"}}'}}
        try:
            result = await execute_tool(tool_call)
        except TimeoutError:
            caribou.set_status(caribou.RolloutStatus.TRUNCATED)
            caribou.set_error("Operation timed out after 30s")
        else:
            caribou.log(ToolExecution(name="get_weather", call_id="call_risky", result=result))


async def handle_failing_request(request_id: str):
    """An exception escapes the block: status ERROR, message and traceback recorded, re-raised."""
    with caribou.trace_run({"datapoint_id": request_id, "phase": "prod", "model_name": "gpt-4o"}) as trace_id:
        TRACE_IDS.append(trace_id)
        caribou.log(Message(role="user", content="divide by zero, please"))
        raise ZeroDivisionError("the agent divided by zero")


async def main() -> None:
    await asyncio.gather(
        handle_request("req-001", "What is the weather in Paris?"),
        handle_request("req-002", "Write a haiku about tracing."),
    )
    await handle_request_with_meta("req-003", "cust_123", "Summarise my invoices.")
    await handle_risky_request("req-004", "Atlantis")
    try:
        await handle_failing_request("req-005")
    except ZeroDivisionError:
        pass  # the agent's own error handling; the trace already says ERROR
    report = caribou.flush()
    print(f"flushed: sent={report.sent} dropped={report.dropped} pending={report.pending}")


if __name__ == "__main__":
    asyncio.run(main())
    url = os.environ.get("KESTREL_URL", "").rstrip("/")
    print("trace ids:", " ".join(TRACE_IDS))
    for trace_id in TRACE_IDS:
        print(f"  {trace_id}: see {url or '<KESTREL_URL>'}/api/v1/traces/{trace_id}")

    # --- Shutdown (as on the page) --------------------------------------------------------------
    caribou.shutdown()
