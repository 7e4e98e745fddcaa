"""The seed page's Python code ("Production logging"), run as written against a real Kestrel.

Each block below is copied from the page unchanged. Where the page elides code (``# ...``) or
uses ``await`` at the top level, the block is placed inside a function and the elision is
followed by one line of our own; ``{...}`` (a set holding Ellipsis, as the page writes it) is
passed as is: trace_run must accept it without failing. The stand-ins the page assumes
(``get_completion``, ``execute_tool``, ``risky_operation``) come first.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any, Dict, List

from _fakes import completion_for, tool_result_for
from conftest import EXAMPLES, Kestrel, items_of, run_python

SETUP = '''
import caribou

PROJECT_NAME = "my-project"
caribou.configure(run_id=PROJECT_NAME, phase="prod")

kestrel = caribou.get_kestrel_client()
if kestrel.enabled:
    kestrel.get_or_create_project(name=PROJECT_NAME)
'''

PER_REQUEST = '''
from caribou import Message, ToolExecution

async def handle_request(request_id: str, user_input: str):
    with caribou.trace_run({
        "datapoint_id": request_id,
        "phase": "prod",
        "model_name": "gpt-4o",
    }) as trace_id:
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
'''

MULTI_TURN = '''
with caribou.trace_run({
    "datapoint_id": session_id,
    "phase": "prod",
    "trace_id": f"trc_{session_id}",
    "model_name": "gpt-4o",
}) as trace_id:
    # ...
'''

META_AND_TAGS = '''
with caribou.trace_run({...}) as trace_id:
    # ... agent execution ...
    caribou.add_meta({"customer_id": "cust_123", "latency_ms": 450})
    caribou.add_tags("api_v2", "premium_tier")
'''

ERROR_HANDLING = '''
with caribou.trace_run({...}) as trace_id:
    try:
        result = await risky_operation()
    except TimeoutError:
        caribou.set_status(caribou.RolloutStatus.TRUNCATED)
        caribou.set_error("Operation timed out after 30s")
'''

SHUTDOWN = '''
caribou.shutdown()
'''

COMPLETE = '''
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
'''

STAND_INS = f'''
import asyncio, json, sys, warnings
sys.path.insert(0, {str(EXAMPLES)!r})
from _fakes import get_completion, execute_tool

async def risky_operation():
    raise TimeoutError("no answer")

TRACE_IDS = {{}}
'''


def indent(block: str, prefix: str = "    ") -> str:
    return textwrap.indent(block.strip("\n"), prefix) + "\n"


def production_script() -> str:
    """The page's blocks in order, then a driver that calls them and prints the trace ids."""
    return (
        STAND_INS
        + SETUP
        + PER_REQUEST
        + "\nasync def multi_turn(session_id, text):\n"
        + indent(MULTI_TURN)
        + "        caribou.log(Message(role='user', content=text))\n"
        + "    TRACE_IDS.setdefault('multi', []).append(trace_id)\n"
        + "\nasync def meta_and_tags():\n"
        + indent(META_AND_TAGS)
        + "    TRACE_IDS['meta'] = trace_id\n"
        + "\nasync def error_handling():\n"
        + indent(ERROR_HANDLING)
        + "    TRACE_IDS['error'] = trace_id\n"
        + textwrap.dedent('''
            async def main():
                # Record the ids handle_request's blocks get (the page's function does not return them).
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    await asyncio.gather(
                        handle_request("req-weather", "What is the weather in Paris?"),
                        handle_request("req-haiku", "Write a haiku about tracing."),
                    )
                    await multi_turn("abc", "first turn")
                    await multi_turn("abc", "second turn")
                    await meta_and_tags()
                    await error_handling()
                TRACE_IDS["warnings"] = [str(w.message) for w in caught]
            asyncio.run(main())
            ''')
        + SHUTDOWN
        + "print('RESULT ' + json.dumps(TRACE_IDS))\n"
    )


def result_of(stdout: str) -> Dict[str, Any]:
    m = re.search(r"^RESULT (.*)$", stdout, re.M)
    assert m, stdout
    return json.loads(m.group(1))


def test_production_page_runs_as_written(kestrel: Kestrel) -> None:
    out = result_of(run_python(production_script(), kestrel.url).stdout)

    # Per-request tracing: find the two request traces by datapoint.
    by_dp = {t["datapoint_id"]: t for t in kestrel.traces(project="my-project") if t["datapoint_id"]}
    weather = kestrel.wait_trace(by_dp["req-weather"]["trace_id"], lambda t: t["status"] != "RUNNING")
    assert weather["phase"] == "prod" and weather["model_name"] == "gpt-4o"
    assert weather["run_id"] == "my-project" and weather["project"] == "my-project"
    assert weather["status"] == "COMPLETED"
    completion = completion_for("What is the weather in Paris?")
    tc = completion["tool_calls"][0]
    assert items_of(weather) == [
        {"type": "message", "role": "user", "content": "What is the weather in Paris?"},
        {
            "type": "message",
            "role": "assistant",
            "tool_calls": completion["tool_calls"],
            "model": "gpt-4o",
            "provider": "openai",
            "input_tokens": completion["usage"]["input"],
            "output_tokens": completion["usage"]["output"],
            "cost_usd": completion["usage"]["cost"],
        },
        {
            "type": "tool_execution",
            "name": "get_weather",
            "call_id": tc["id"],
            "arguments": tc["function"]["arguments"],  # the JSON string, kept as given
            "result": tool_result_for(tc),
            "requestor": "agent",
        },
    ]
    assert isinstance(items_of(weather)[2]["arguments"], str)
    assert weather["input_tokens"] == completion["usage"]["input"]
    assert weather["tool_calls"] == 1 and weather["messages"] == 2

    haiku = kestrel.wait_trace(by_dp["req-haiku"]["trace_id"], lambda t: t["status"] != "RUNNING")
    assert [i["role"] for i in items_of(haiku)] == ["user", "assistant"]
    assert items_of(haiku)[1]["content"] == completion_for("Write a haiku about tracing.")["content"]

    # Multi-turn: one trace, two turns, the given id.
    assert out["multi"] == ["trc_abc", "trc_abc"]
    multi = kestrel.wait_trace("trc_abc", lambda t: len(t["turns"]) == 2 and t["status"] != "RUNNING")
    assert [i["content"] for i in items_of(multi)] == ["first turn", "second turn"]
    assert multi["datapoint_id"] == "abc" and multi["status"] == "COMPLETED"

    # Metadata and tags, in a trace_run({...}) block.
    meta = kestrel.wait_trace(out["meta"], lambda t: t["status"] != "RUNNING")
    assert meta["metadata"]["customer_id"] == "cust_123" and meta["metadata"]["latency_ms"] == 450
    assert sorted(meta["tags"]) == ["api_v2", "premium_tier"]
    assert meta["run_id"] == "my-project"  # the configured defaults

    # Error handling: explicit TRUNCATED and message.
    err = kestrel.wait_trace(out["error"], lambda t: t["status"] != "RUNNING")
    assert err["status"] == "TRUNCATED"
    assert err["error"] == "Operation timed out after 30s"

    # `{...}` is not a dict: trace_run said so (once) and went on.
    assert any("trace_run() takes a dict" in w for w in out["warnings"]), out["warnings"]


def test_complete_example_runs_as_written(kestrel: Kestrel) -> None:
    script = (
        STAND_INS
        + COMPLETE
        + textwrap.dedent('''
            MESSAGES = [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": "Hello there"}]},
            ]
            asyncio.run(handle_request("req-complete", MESSAGES))
            caribou.shutdown()
            ''')
    )
    run_python(script, kestrel.url)
    [summary] = [t for t in kestrel.traces(project="my-agent") if t["datapoint_id"] == "req-complete"]
    trace = kestrel.wait_trace(summary["trace_id"], lambda t: t["status"] != "RUNNING")
    messages: List[Dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Hello there"}]},
    ]
    completion = completion_for(messages)
    assert items_of(trace) == [
        {"type": "message", "role": "system", "content": "You are terse."},
        {"type": "message", "role": "user", "content": [{"type": "text", "text": "Hello there"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": completion["content"],
            "model": "gpt-4o",
            "input_tokens": completion["usage"]["input"],
            "output_tokens": completion["usage"]["output"],
            "cost_usd": completion["usage"]["cost"],
        },
    ]
    assert trace["metadata"] == {"request_id": "req-complete"}
    assert trace["status"] == "COMPLETED" and trace["model_name"] == "gpt-4o" and trace["phase"] == "prod"
