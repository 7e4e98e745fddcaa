"""Realistic traces for the ingest and query benches, as Kestrel ingest batches (the wire format of
``caribou_model::Batch``: ``{"records": [...]}``).

A trace is what an agent rollout logs: a ``trace_open`` (project, or a training run and its step,
datapoint, model, metadata with ``customer_id`` and ``latency_ms``), 2-30 items (a user message, then
assistant turns with token counts and cost, tool executions with arguments and results, now and
then an event, a ``reward`` grade on training traces), sometimes tags, an error and a status,
then ``trace_close``. Texts are drawn from a vocabulary of a few thousand made-up words plus a few
phrases the query examples look for ("timed out"), so full-text search has realistic postings.
Everything is seeded: the same arguments give the same traces (with fresh record ids).

Ids are time-ordered UUIDv7s built here (a counter in the random bits keeps them unique within a
process; the ``salt`` keeps processes apart).
"""

from __future__ import annotations

import json
import random
import time
from typing import Any, Dict, Iterator, List, Optional

MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llama-3.1-70b", "qwen-2.5-72b"]
TOOLS = ["search", "calculator", "read_file", "sql", "http_get", "python"]
TAGS = ["premium_tier", "internal", "beta", "eu", "us", "mobile", "retry", "long_context"]
PHRASES = ["timed out", "rate limit exceeded", "connection reset", "permission denied", "not found"]
_SYL = ["ka", "ri", "bo", "lu", "ne", "ta", "mi", "so", "ve", "da", "po", "gi", "fe", "ru", "xa", "zo"]


def _vocab(rng: random.Random, n: int = 4000) -> List[str]:
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYL) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class Ids:
    """UUIDv7 text ids: the current millisecond, then a per-process salt and a counter."""

    def __init__(self, salt: int) -> None:
        self.salt = salt & 0xFFF
        self.counter = 0

    def next(self, ts_us: int) -> str:
        self.counter += 1
        ms = ts_us // 1000
        value = (ms << 80) | (0x7 << 76) | (self.salt << 64) | (0b10 << 62) | (self.counter & ((1 << 62) - 1))
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Generator:
    def __init__(self, seed: int = 7, salt: int = 1, project: str = "bench", run_id: Optional[str] = None,
                 steps: int = 100) -> None:
        self.rng = random.Random(seed)
        self.words = _vocab(random.Random(1))
        pool = random.Random(2)
        self.sentences = [
            " ".join(self.words[min(int(pool.paretovariate(1.1)) * 7 + pool.randrange(7), len(self.words) - 1)]
                     for _ in range(10))
            for _ in range(20_000)
        ]
        self.ids = Ids(salt)
        self.project, self.run_id, self.steps = project, run_id, steps
        self.salt = salt
        self.n_traces = 0
        self.ts = int(time.time() * 1e6) - 86_400_000_000  # a day ago, moving forward

    def text(self, lo: int, hi: int) -> str:
        """About ``lo``..``hi`` words: sentences drawn from a fixed pool (made once, Zipf-like word
        frequencies), so making millions of texts stays cheap."""
        rng = self.rng
        k = max(1, rng.randint(lo, hi) // 10)
        out = " ".join(self.sentences[rng.randrange(len(self.sentences))] for _ in range(k))
        if rng.random() < 0.03:
            out += " " + rng.choice(PHRASES)
        return out

    def _rec(self, kind: str, trace_id: str, **fields: Any) -> Dict[str, Any]:
        self.ts += self.rng.randint(50, 5000)
        return {"kind": kind, "id": self.ids.next(self.ts), "trace_id": trace_id, "ts": self.ts, **fields}

    def trace(self, n_items: Optional[int] = None) -> List[Dict[str, Any]]:
        """One trace's records."""
        rng = self.rng
        self.n_traces += 1
        trace_id = f"trc_bench_{self.salt}_{self.n_traces}_{rng.getrandbits(32):08x}"
        turn = self.ids.next(self.ts)
        model = rng.choice(MODELS)
        train = self.run_id is not None and rng.random() < 0.7
        open_fields: Dict[str, Any] = {
            "turn_id": turn,
            "datapoint_id": f"dp_{rng.randrange(5000)}",
            "model_name": model,
            "metadata": {"customer_id": f"cust_{rng.randrange(1000)}", "latency_ms": rng.randint(50, 3000)},
        }
        if train:
            open_fields.update(run_id=self.run_id, phase="train", step=rng.randrange(self.steps))
        else:
            open_fields.update(project=self.project, phase="prod")
        recs = [self._rec("trace_open", trace_id, **open_fields)]
        n = n_items if n_items is not None else min(30, 2 + int(rng.expovariate(1 / 8)))
        recs.append(self._item(trace_id, turn, {"type": "message", "role": "user", "content": self.text(10, 80)}))
        while len(recs) - 1 < n:
            r = rng.random()
            if r < 0.45:
                item = {"type": "message", "role": "assistant", "content": self.text(20, 120), "model": model,
                        "provider": "openai", "input_tokens": rng.randint(50, 4000),
                        "output_tokens": rng.randint(10, 800), "cost_usd": round(rng.random() * 0.02, 6)}
            elif r < 0.85:
                tool = rng.choice(TOOLS)
                item = {"type": "tool_execution", "name": tool, "call_id": f"call_{rng.getrandbits(40):x}",
                        "arguments": {"query": self.text(2, 8)}, "result": self.text(5, 60),
                        "duration_ms": round(rng.random() * 900, 1)}
            else:
                item = {"type": "event", "name": "retrieval", "data": {"docs": rng.randint(1, 9)}, "level": "info"}
            recs.append(self._item(trace_id, turn, item))
        if train:
            recs.append(self._item(trace_id, turn, {"type": "grade", "name": "reward", "value": round(rng.random(), 3)}))
        if rng.random() < 0.3:
            recs.append(self._rec("tags", trace_id, tags=rng.sample(TAGS, rng.randint(1, 3))))
        status = rng.choices(["COMPLETED", "ERROR", "TRUNCATED", "CANCELLED"], [85, 8, 5, 2])[0]
        if status == "ERROR":
            recs.append(self._rec("error", trace_id, message=rng.choice(["TimeoutError: timed out", "ValueError: bad tool args"])))
        recs.append(self._rec("trace_close", trace_id, turn_id=turn, status=status))
        return recs

    def _item(self, trace_id: str, turn: str, item: Dict[str, Any]) -> Dict[str, Any]:
        return self._rec("item", trace_id, turn_id=turn, item=item)

    def batches(self, n_items: int, batch_records: int = 1000) -> Iterator[List[Dict[str, Any]]]:
        """Whole traces grouped into batches of about ``batch_records`` records, until ``n_items``
        items (records of kind ``item``) were made."""
        made, batch = 0, []
        while made < n_items:
            recs = self.trace()
            made += sum(1 for r in recs if r["kind"] == "item")
            batch.extend(recs)
            if len(batch) >= batch_records:
                yield batch
                batch = []
        if batch:
            yield batch


def body(records: List[Dict[str, Any]]) -> bytes:
    return json.dumps({"records": records}, separators=(",", ":")).encode()
