"""Deterministic stand-ins for the two things the examples cannot do here: call an LLM and run a tool.

``get_completion`` answers like an OpenAI-style chat client flattened to a dict (``content``,
``tool_calls`` with JSON-string ``arguments``, ``usage`` with ``input``/``output`` tokens and a
``cost``); ``execute_tool`` returns a tool result dict. Both are pure functions of their input, so
the tests can compute what the examples must have logged. Everything else in the examples is
real Caribou code talking to a real Kestrel.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Union

#: Price of the fake model, USD per token.
INPUT_PRICE = 2.5e-6
OUTPUT_PRICE = 1.0e-5


def _text_of(prompt: Union[str, List[Dict[str, Any]]]) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content") or "") for m in prompt)


def completion_for(prompt: Union[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """The completion ``get_completion`` returns for ``prompt`` (synchronously)."""
    text = _text_of(prompt)
    input_tokens = len(text.split()) + 7
    if "weather" in text.lower():
        city = "Paris" if "paris" in text.lower() else "Oslo"
        content = None
        tool_calls = [
            {
                "id": f"call_{abs(hash_text(text)) % 10_000:04d}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": city, "unit": "celsius"})},
            }
        ]
        output_tokens = 18
    else:
        content = f"Here is my answer to: {text[-60:]}"
        tool_calls = None
        output_tokens = len(content.split())
    cost = round(input_tokens * INPUT_PRICE + output_tokens * OUTPUT_PRICE, 10)
    return {
        "content": content,
        "tool_calls": tool_calls,
        "usage": {"input": input_tokens, "output": output_tokens, "cost": cost},
    }


async def get_completion(prompt: Union[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """A fake chat completion (see the module docs)."""
    await asyncio.sleep(0.001)
    return completion_for(prompt)


def tool_result_for(tool_call: Dict[str, Any]) -> Dict[str, Any]:
    """The result ``execute_tool`` returns for ``tool_call``."""
    args = json.loads(tool_call["function"]["arguments"])
    if args.get("city") == "Atlantis":
        raise TimeoutError("weather service did not answer within 30s")
    temps = {"Paris": 18, "Oslo": 4}
    return {"city": args["city"], "temperature": temps.get(args["city"], 10), "unit": args.get("unit", "celsius")}


async def execute_tool(tool_call: Dict[str, Any]) -> Dict[str, Any]:
    """A fake tool run (see the module docs)."""
    await asyncio.sleep(0.001)
    return tool_result_for(tool_call)


def hash_text(text: str) -> int:
    """A stable hash (Python's ``hash`` of a str changes between runs)."""
    h = 0
    for ch in text:
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    return h
