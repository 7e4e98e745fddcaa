"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*): valid ingest batches
of every record kind, and the hostile inputs the issue lists: huge strings, deep JSON, many tags,
invalid UTF-8, NaN/inf numbers, ids that collide across projects and traces. Run it again after
changing it; `cargo fuzz run` adds its own finds next to these (commit the interesting ones).

    python3 fuzz/make_seeds.py
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
TS = 1_750_000_000_000_000


def uid(n: int) -> str:
    return str(uuid.UUID(int=(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)))


def open_(n: int, trace: str, **extra: Any) -> Dict[str, Any]:
    r = {"kind": "trace_open", "id": uid(n), "trace_id": trace, "ts": TS + n, "turn_id": uid(10_000 + n)}
    r.update(extra)
    return r


def item(n: int, trace: str, item: Dict[str, Any]) -> Dict[str, Any]:
    return {"kind": "item", "id": uid(n), "trace_id": trace, "ts": TS + n, "turn_id": uid(10_000), "item": item}


def full_trace(trace: str, base: int = 0, project: str = "p") -> List[Dict[str, Any]]:
    return [
        open_(base + 1, trace, project=project, phase="prod", model_name="gpt-4o", metadata={"k": [1, {"a": None}]}),
        item(base + 2, trace, {"type": "message", "role": "user", "content": "hi", "input_tokens": 3, "cost_usd": 0.5}),
        item(base + 3, trace, {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "x"}],
                               "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}),
        item(base + 4, trace, {"type": "tool_execution", "name": "f", "call_id": "c1", "arguments": {"q": 1}, "result": "ok"}),
        item(base + 5, trace, {"type": "event", "name": "retrieval", "data": {"n": 3}, "level": "info"}),
        item(base + 6, trace, {"type": "grade", "name": "reward", "value": 0.75, "grader": "v1"}),
        {"kind": "status", "id": uid(base + 7), "trace_id": trace, "ts": TS, "status": "TRUNCATED"},
        {"kind": "error", "id": uid(base + 8), "trace_id": trace, "ts": TS, "message": "boom", "traceback": "tb"},
        {"kind": "metadata", "id": uid(base + 9), "trace_id": trace, "ts": TS, "metadata": {"customer": "c1"}},
        {"kind": "tags", "id": uid(base + 10), "trace_id": trace, "ts": TS, "tags": ["a", "b"]},
        {"kind": "trace_close", "id": uid(base + 11), "trace_id": trace, "ts": TS + 99, "turn_id": uid(10_001), "status": "COMPLETED"},
    ]


def batch(records: List[Dict[str, Any]]) -> bytes:
    return json.dumps({"records": records}).encode()


def ingest_seeds() -> Dict[str, bytes]:
    s: Dict[str, bytes] = {
        "valid-full-trace": batch(full_trace("trc_seed")),
        "valid-empty": batch([]),
        "valid-items-before-open": batch(list(reversed(full_trace("trc_rev")))),
        "huge-string": batch([item(1, "trc_big", {"type": "message", "role": "user", "content": "x" * 300_000})]),
        "many-tags": batch([{"kind": "tags", "id": uid(1), "trace_id": "t", "ts": TS, "tags": [f"t{i}" for i in range(5000)]}]),
        "long-tag": batch([{"kind": "tags", "id": uid(1), "trace_id": "t", "ts": TS, "tags": ["x" * 100_000]}]),
        "long-trace-id": batch([open_(1, "t" * 10_000)]),
        "empty-trace-id": batch([open_(1, "")]),
        "control-chars-id": batch([open_(1, "trc\n\u0000\u202e")]),
        "same-record-id-twice": batch([open_(1, "trc_a", project="p1"), open_(1, "trc_a", project="p1")]),
        "ids-collide-across-projects": batch(full_trace("trc_shared", 0, "proj-a") + full_trace("trc_shared", 100, "proj-b")),
        "record-id-reused-other-trace": batch([open_(7, "trc_x", project="a"), item(7, "trc_y", {"type": "event", "name": "e"})]),
        "negative-and-huge-ts": batch([open_(1, "t") | {"ts": -9223372036854775808}, open_(2, "u") | {"ts": 9223372036854775807}]),
        "negative-tokens": batch([item(1, "t", {"type": "message", "role": "user", "input_tokens": -1, "cost_usd": -0.0})]),
        "unknown-kind": b'{"records":[{"kind":"nope","id":"' + uid(1).encode() + b'","trace_id":"t","ts":1}]}',
        "unknown-field": b'{"records":[],"extra":1}',
        "not-a-uuid": b'{"records":[{"kind":"status","id":"123","trace_id":"t","ts":1,"status":"COMPLETED"}]}',
    }
    shallow = json.dumps({"records": [open_(1, "t", metadata={"deep": "X"})]}).encode()
    s["deep-json-metadata"] = shallow.replace(b'"X"', b'{"d":' * 2000 + b'"x"' + b"}" * 2000)
    s["deep-json-metadata-100"] = shallow.replace(b'"X"', b'{"d":' * 100 + b'"x"' + b"}" * 100)
    s["deep-json-array"] = b'{"records":' + b"[" * 5000 + b"]" * 5000 + b"}"
    nan = json.dumps({"records": [item(1, "t", {"type": "grade", "name": "reward", "value": 1.0})]})
    s["nan-grade"] = nan.replace("1.0", "NaN").encode()
    s["inf-cost"] = nan.replace('"value": 1.0', '"value": 1.0, "x": Infinity').encode()
    s["huge-number"] = nan.replace("1.0", "1e400").encode()
    s["tiny-number"] = nan.replace("1.0", "-1e-400").encode()
    s["big-int-tokens"] = json.dumps({"records": [item(1, "t", {"type": "message", "role": "u"})]}).replace(
        '"role": "u"', '"role": "u", "input_tokens": 184467440737095516150'
    ).encode()
    good = batch([item(1, "t", {"type": "message", "role": "user", "content": "AB"})])
    s["invalid-utf8-in-string"] = good.replace(b'"AB"', b'"A\xff\xfeB"')
    s["lone-surrogate-escape"] = good.replace(b'"AB"', b'"\\ud800"')
    s["nul-escape"] = good.replace(b'"AB"', b'"a\\u0000b"')
    s["truncated"] = good[: len(good) // 2]
    s["not-json"] = b"\x28\xb5\x2f\xfd\x00\x00garbage"
    return s


def query_seeds() -> Dict[str, bytes]:
    qs = [
        'status:error tag:premium_tier meta.customer_id:cust_123 meta.latency_ms>400 model:gpt-4o step:10..20 '
        'grade.reward>=0.5 cost>0.01 -tag:internal "timed out"',
        "(status:error OR status:truncated) AND NOT tag:x",
        "since:1h until:2024-01-01 phase:train run:abc",
        "grade.reward>NaN",
        "cost>inf",
        "step:..",
        "step:9223372036854775807..-9223372036854775808",
        '"unterminated',
        "meta.:x",
        "meta." + "a" * 5000 + ":1",
        "(" * 10_000 + "x" + ")" * 10_000,
        "-" * 5000 + "x",
        "\u202e\u0000\ufffd emoji 🦌",
        "",
        "tag:" + ",".join(f"t{i}" for i in range(2000)),
    ]
    out = {f"q{i:02}": q.encode() for i, q in enumerate(qs)}
    out["invalid-utf8"] = b"status:\xff\xfeerror"
    return out


def write(target: str, seeds: Dict[str, bytes]) -> None:
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (folder / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    write("ingest_decode", ingest_seeds())
    write("query_parse", query_seeds())
