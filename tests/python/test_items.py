"""Item construction: field names, the shapes LLM clients return, and what happens to odd values.

Content, tool calls, arguments and results take what OpenAI- and Anthropic-style clients return
(strings, lists of parts, dicts, JSON strings, pydantic models, dataclasses) and are stored as
JSON, as given. Required fields of the wrong type raise TypeError; odd optional values are
dropped with one warning and never raise.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from typing import Any, Dict, List, Optional

import pydantic
import pytest

import caribou
from caribou import Event, Grade, Message, ToolExecution
from conftest import Kestrel, items_of


# --- OpenAI- and Anthropic-style objects, as their SDKs return them (pydantic v2 models) --------


class Function(pydantic.BaseModel):
    name: str
    arguments: str


class ChatCompletionMessageToolCall(pydantic.BaseModel):
    id: str
    type: str = "function"
    function: Function


class TextBlock(pydantic.BaseModel):
    type: str = "text"
    text: str


class ToolUseBlock(pydantic.BaseModel):
    type: str = "tool_use"
    id: str
    name: str
    input: Dict[str, Any]


@dataclasses.dataclass
class SearchHit:
    url: str
    score: float
    tags: List[str]


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


OPENAI_TOOL_CALLS = [
    ChatCompletionMessageToolCall(id="call_1", function=Function(name="search", arguments='{"q": "caribou"}'))
]
ANTHROPIC_CONTENT = [
    TextBlock(text="Let me look that up."),
    ToolUseBlock(id="toolu_1", name="search", input={"q": "caribou", "limit": 3}),
]


def test_message_fields_round_trip() -> None:
    m = Message(
        role="assistant",
        content="hi",
        tool_calls=[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        tool_call_id="c0",
        name="bot",
        model="gpt-4o",
        provider="openai",
        input_tokens=10,
        output_tokens=20,
        cost_usd=0.003,
        metadata={"k": [1, 2]},
    )
    assert (m.role, m.content, m.tool_call_id, m.name, m.model, m.provider) == (
        "assistant", "hi", "c0", "bot", "gpt-4o", "openai"
    )
    assert (m.input_tokens, m.output_tokens, m.cost_usd, m.metadata) == (10, 20, 0.003, {"k": [1, 2]})
    assert m.to_dict()["type"] == "message"
    assert m == Message(**{k: v for k, v in m.to_dict().items() if k != "type"})
    t = ToolExecution(name="f", call_id="c1", arguments={"a": 1}, result="ok", requestor="agent", error=None, duration_ms=1.5)
    assert t.to_dict() == {
        "type": "tool_execution", "name": "f", "call_id": "c1", "arguments": {"a": 1}, "result": "ok",
        "requestor": "agent", "duration_ms": 1.5,
    }
    assert Event(name="retrieval").level == "info"
    assert Event("guardrail", {"rule": 3}, "warn").to_dict() == {
        "type": "event", "name": "guardrail", "data": {"rule": 3}, "level": "warn"
    }
    g = Grade(name="reward", value=0.5, comment="ok", grader="v1", metadata={"a": 1})
    assert g.to_dict() == {"type": "grade", "name": "reward", "value": 0.5, "comment": "ok", "grader": "v1", "metadata": {"a": 1}}
    assert Grade("correct", True).value is True and Grade("label", "good").value == "good"
    assert Grade("n", 3).value == 3.0


def test_content_shapes_convert_to_json() -> None:
    assert Message(role="assistant", tool_calls=OPENAI_TOOL_CALLS).tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q": "caribou"}'}}
    ]
    assert Message(role="assistant", content=ANTHROPIC_CONTENT).content == [
        {"type": "text", "text": "Let me look that up."},
        {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "caribou", "limit": 3}},
    ]
    hit = SearchHit(url="https://example.org", score=0.75, tags=["a"])
    assert ToolExecution(name="search", result=[hit]).result == [{"url": "https://example.org", "score": 0.75, "tags": ["a"]}]
    # A JSON string stays the string given.
    assert ToolExecution(name="f", arguments='{"x": 1}').arguments == '{"x": 1}'
    # Tuples, sets, bytes, non-str keys, odd numbers, unknown objects.
    assert Message(role="user", content=(1, "a")).content == [1, "a"]
    assert Message(role="user", content={"s": {3}}).content == {"s": [3]}
    assert Message(role="user", content=b"bytes \xff").content == "bytes \ufffd"
    assert Message(role="user", content={1: "one", None: "none"}).content == {"1": "one", "None": "none"}
    assert Message(role="user", content=[math.nan, math.inf, 2**70]).content == ["NaN", "Infinity", str(2**70)]
    assert Message(role="user", content=Opaque()).content == "<opaque thing>"
    # Deep or cyclic structures end in text instead of recursing forever.
    cyclic: List[Any] = []
    cyclic.append(cyclic)
    assert isinstance(json.dumps(Message(role="user", content=cyclic).content), str)


class MakesAnItem:
    """A value whose text is made by building another item (while the first is being written)."""

    def __str__(self) -> str:
        inner = Message(role="inner", content=["deep", {"k": MakesNothing()}])
        return json.dumps(inner.content)


class MakesNothing:
    def __str__(self) -> str:
        return "leaf"


def test_an_item_built_while_another_is_written() -> None:
    m = Message(role="user", content={"a": MakesAnItem(), "b": "after"})
    assert m.content == {"a": '["deep", {"k": "leaf"}]', "b": "after"}
    t = ToolExecution(name="f", result=[MakesAnItem(), 1])
    assert t.result == ['["deep", {"k": "leaf"}]', 1]


def test_required_fields_of_the_wrong_type_raise_type_error() -> None:
    with pytest.raises(TypeError, match="Message.role must be a str"):
        Message(role=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ToolExecution.name"):
        ToolExecution(name=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Grade.value"):
        Grade(name="reward", value=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Message()  # type: ignore[call-arg]


def test_odd_optional_values_are_coerced_or_dropped_with_one_warning() -> None:
    caribou._caribou._reset_warnings()
    m = Message(role="assistant", input_tokens="12", output_tokens=7.0, cost_usd="0.25")
    assert (m.input_tokens, m.output_tokens, m.cost_usd) == (12, 7, 0.25)
    before = caribou.stats()["dropped_fields"]
    with pytest.warns(caribou.CaribouWarning, match="input_tokens"):
        m = Message(role="assistant", content="kept", input_tokens=-3, cost_usd=math.nan, metadata="not a dict")
    assert (m.input_tokens, m.cost_usd, m.metadata, m.content) == (None, None, None, "kept")
    assert caribou.stats()["dropped_fields"] == before + 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second bad value: counted, not warned again
        assert Message(role="user", output_tokens="many").output_tokens is None


def test_logging_bad_things_never_raises(traced: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # even a warnings filter of "error" must not break the agent
        with caribou.trace_run({"datapoint_id": "bad-things"}):
            caribou.log({"role": "user"})  # type: ignore[arg-type]
            caribou.log(None)  # type: ignore[arg-type]
            caribou.log(Message(role=""))  # invalid: empty role
            caribou.set_status("no such status")
            caribou.add_meta(["not", "a", "dict"])  # type: ignore[arg-type]
            caribou.add_tags(object())  # type: ignore[arg-type]
    s = caribou.stats()
    assert s["dropped_items"] >= 3 and s["bad_arguments"] >= 2


def test_every_shape_is_stored_as_given(kestrel: Kestrel, traced: str) -> None:
    hit = SearchHit(url="https://example.org", score=0.75, tags=["a", "b"])
    with caribou.trace_run({"datapoint_id": "shapes", "model_name": "claude-x"}) as trace_id:
        caribou.log(Message(role="system", content="be brief"))
        caribou.log(Message(role="user", content=[{"type": "text", "text": "find caribou"}, {"type": "image_url", "image_url": {"url": "data:,"}}]))
        caribou.log(Message(role="assistant", content=ANTHROPIC_CONTENT, model="claude-x", provider="anthropic", input_tokens=30, output_tokens=12, cost_usd=0.0004))
        caribou.log(Message(role="assistant", content=None, tool_calls=OPENAI_TOOL_CALLS, model="gpt-4o", provider="openai"))
        caribou.log(ToolExecution(name="search", call_id="call_1", arguments='{"q": "caribou"}', result=[hit], requestor="agent", duration_ms=12.5))
        caribou.log(ToolExecution(name="search", call_id="toolu_1", arguments={"q": "caribou", "limit": 3}, error=TimeoutError("slow"), requestor="agent"))
        caribou.log(Message(role="tool", tool_call_id="call_1", name="search", content=json.dumps({"hits": 1})))
        caribou.log(Event(name="guardrail", data={"rule": "pii", "hit": False}, level="warn"))
        caribou.log(Grade(name="helpful", value=True, grader="human:ana", comment="good"))
    report = caribou.flush(timeout=10)
    assert report.pending == 0 and not report.timed_out
    trace = kestrel.wait_trace(trace_id, lambda t: t["status"] == "COMPLETED")
    assert items_of(trace) == [
        {"type": "message", "role": "system", "content": "be brief"},
        {"type": "message", "role": "user", "content": [{"type": "text", "text": "find caribou"}, {"type": "image_url", "image_url": {"url": "data:,"}}]},
        {"type": "message", "role": "assistant", "content": [b.model_dump(mode="json") for b in ANTHROPIC_CONTENT],
         "model": "claude-x", "provider": "anthropic", "input_tokens": 30, "output_tokens": 12, "cost_usd": 0.0004},
        {"type": "message", "role": "assistant", "tool_calls": [c.model_dump(mode="json") for c in OPENAI_TOOL_CALLS],
         "model": "gpt-4o", "provider": "openai"},
        {"type": "tool_execution", "name": "search", "call_id": "call_1", "arguments": '{"q": "caribou"}',
         "result": [dataclasses.asdict(hit)], "requestor": "agent", "duration_ms": 12.5},
        {"type": "tool_execution", "name": "search", "call_id": "toolu_1", "arguments": {"q": "caribou", "limit": 3},
         "error": "TimeoutError: slow", "requestor": "agent"},
        {"type": "message", "role": "tool", "tool_call_id": "call_1", "name": "search", "content": '{"hits": 1}'},
        {"type": "event", "name": "guardrail", "data": {"rule": "pii", "hit": False}, "level": "warn"},
        {"type": "grade", "name": "helpful", "value": True, "grader": "human:ana", "comment": "good"},
    ]
    assert trace["input_tokens"] == 30 and trace["output_tokens"] == 12
    assert trace["cost_usd"] == pytest.approx(0.0004)




# --- Random values against a reference of the conversion rules ------------------------------------
#
# `Message` and `ToolExecution` write their JSON straight from the Python values (not through a
# converted value); `expected` restates the rules of `convert.rs` in Python, and random nested
# values (every shape the rules name, odd strings and numbers, keys that are not `str`, nesting past
# the depth limit) must come back from the getters, and from Kestrel, exactly as it says.

MAX_DEPTH = 64


def expected(v: Any, depth: int = 0) -> Any:
    if isinstance(v, str):
        return v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if v is None:
        return None
    if depth >= MAX_DEPTH:
        return str(v)
    if isinstance(v, dict):
        out: Dict[str, Any] = {}
        for k, x in v.items():
            out[expected(k) if isinstance(k, str) else str(k)] = expected(x, depth + 1)
        return out
    if isinstance(v, (list, tuple)):
        return [expected(x, depth + 1) for x in v]
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**64 else str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return expected(dataclasses.asdict(v), depth + 1)
    if isinstance(v, (set, frozenset)):
        return [expected(x, depth + 1) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


ODD_STRINGS = ["", "plain", 'q"uote', "back\\slash", "\n\t\r\x00\x1f\x7f", "é 中 🦌", "\ud800 lone", "</script>", "x" * 600]
ODD_NUMBERS = [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 2**100, 0.0, -0.0, 0.1, 1e-7, 1e300,
               5e-324, 1.7976931348623157e308, 0.30000000000000004, math.nan, math.inf, -math.inf, True, False]


def random_value(rng: "random.Random", depth: int) -> Any:
    pick = rng.randrange(12 if depth < 4 else 6)
    if pick < 2:
        return rng.choice(ODD_STRINGS)
    if pick < 4:
        return rng.choice(ODD_NUMBERS)
    if pick == 4:
        return None
    if pick == 5:
        return rng.choice([b"by\xfftes", Opaque(), frozenset(), {1}, SearchHit("u", 0.5, ["t"])])
    if pick < 8:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 8:
        return tuple(random_value(rng, depth + 1) for _ in range(rng.randrange(3)))
    if pick == 9:
        keys: List[Any] = [rng.choice(ODD_STRINGS) for _ in range(rng.randrange(4))]
        return {k: random_value(rng, depth + 1) for k in keys}
    # Keys that are not str; some of them collide with a str key once converted.
    return {rng.choice([1, "1", None, "None", 2.5, (1, 2), True]): random_value(rng, depth + 1) for _ in range(3)}


def nested(levels: int) -> Any:
    v: Any = {"leaf": [1, "x"]}
    for k in range(levels):
        v = [v] if k % 2 else {"k": v}
    return v


def random_values() -> List[Any]:
    import random

    rng = random.Random(20261126)
    return [random_value(rng, 0) for _ in range(300)] + [nested(62), nested(63), nested(64), nested(70)] + ODD_STRINGS + ODD_NUMBERS


def same(a: Any, b: Any) -> bool:
    """Equal as JSON text: 1, 1.0 and True are three different things here."""
    return json.dumps(a, allow_nan=False) == json.dumps(b, allow_nan=False)


def test_random_values_are_written_by_the_rules() -> None:
    for v in random_values():
        want = expected(v)
        m = Message(role="user", content=v, metadata={"v": v})
        assert same(m.content, want), (v, m.content, want)
        assert same(m.metadata, expected({"v": v})), (v, m.metadata)
        t = ToolExecution(name="f", arguments=v, result=[v])
        assert same(t.arguments, want) and same(t.result, expected([v])), v
        assert m == Message(role="user", content=v, metadata={"v": v})


def test_random_values_reach_kestrel_as_written(kestrel: Kestrel, traced: str) -> None:
    values = random_values()
    with caribou.trace_run({"datapoint_id": "random-values"}) as trace_id:
        for v in values:
            caribou.log(Message(role="user", content=v))
            caribou.log(ToolExecution(name="f", result=v))
    report = caribou.flush(timeout=30)
    assert report.pending == 0 and not report.timed_out and caribou.stats()["dropped"] == 0
    trace = kestrel.wait_trace(trace_id, lambda t: len(t["items"]) == 2 * len(values))
    stored = items_of(trace)
    for k, v in enumerate(values):
        want = expected(v)
        assert same(stored[2 * k].get("content"), want), (v, stored[2 * k])
        assert same(stored[2 * k + 1].get("result"), want), (v, stored[2 * k + 1])
