"""One SDK's hot path, measured in its own process (so RSS and CPU are that SDK's alone).

    python bench/sdk_worker.py SDK URL [--calls 20000] [--rounds 3] [--warmup 1000]

SDK is one of:
- ``floor``: no SDK; the loop builds the values an agent has anyway (the two messages, the tool
  call) and times each call the same way as the others.
- ``caribou``: per call one ``trace_run`` holding ``Message`` in (500 chars), ``Message`` out (500
  chars, tokens, cost) and one ``ToolExecution``; 5 records (open, 3 items, close). URL: Kestrel.
- ``caribou-turn``: the same three items per call, all calls inside one long ``trace_run`` (an
  agent loop logging into its current trace); 3 records per call.
- ``otel``: the OpenTelemetry SDK, BatchSpanProcessor (defaults) + OTLP/HTTP exporter; per call one
  span with the same content as attributes. URL: the sink.
- ``langfuse``: the Langfuse SDK (defaults); per call one generation with the same content.
  URL: the sink.

Each round: a burst of ``--calls`` calls in a tight loop, then ``flush()``. Before the rounds, a
warm-up of ``--warmup`` calls and a flush. Prints one JSON object: per round the per-call wall
time percentiles, process CPU per call from the loop's start to the end of flush (the agent's
thread and the export threads) and of the agent's thread alone (the loop), the flush time, records dropped; and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import urllib.request
from array import array
from typing import Any, Callable, Dict, List

USER = ("Plan a 3-day trip to Lapland to watch the caribou migration; " * 9)[:500]
ANSWER = ("Day 1: fly to Rovaniemi, meet the guide, first evening out on the tundra. " * 7)[:500]
ARGS = '{"query": "caribou migration lapland", "limit": 5}'
RESULT = {"hits": 5, "top": "https://example.org/caribou"}
MODEL = "gpt-4o"


def percentile(sorted_ns: List[int], p: float) -> float:
    i = min(len(sorted_ns) - 1, max(0, int(round(p / 100.0 * len(sorted_ns))) - 1))
    return float(sorted_ns[i])


def rss_now_kb() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() // 1024


class Sdk:
    """A call to time, a flush, and a drop counter."""

    records_per_call = 0

    def call(self, i: int) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    def dropped(self) -> int:
        return 0

    def before_round(self) -> None:
        pass

    def close(self) -> None:
        pass


class Floor(Sdk):
    def call(self, i: int) -> None:
        (
            {"role": "user", "content": USER},
            {"role": "assistant", "content": ANSWER, "model": MODEL, "provider": "openai",
             "input_tokens": 120, "output_tokens": i, "cost_usd": 0.0012},
            {"name": "search", "call_id": "call_1", "arguments": ARGS, "result": RESULT, "requestor": "agent"},
        )


class Caribou(Sdk):
    records_per_call = 5

    def __init__(self, url: str) -> None:
        import caribou

        self.caribou = caribou
        caribou.configure(project="bench", phase="prod", endpoint=url)
        self.log, self.trace_run = caribou.log, caribou.trace_run
        self.Message, self.ToolExecution = caribou.Message, caribou.ToolExecution
        self.meta = {"datapoint_id": "bench"}

    def call(self, i: int) -> None:
        log, Message = self.log, self.Message
        with self.trace_run(self.meta):
            log(Message(role="user", content=USER))
            log(Message(role="assistant", content=ANSWER, model=MODEL, provider="openai",
                        input_tokens=120, output_tokens=i, cost_usd=0.0012))
            log(self.ToolExecution(name="search", call_id="call_1", arguments=ARGS, result=RESULT,
                                   requestor="agent"))

    def flush(self) -> None:
        self.caribou.flush(timeout=120)

    def dropped(self) -> int:
        return int(self.caribou.stats()["dropped"])

    def close(self) -> None:
        self.caribou.shutdown()


class CaribouTurn(Caribou):
    """All calls logged into one open turn (no trace open/close per call)."""

    records_per_call = 3

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.block = self.trace_run(self.meta)
        self.block.__enter__()

    def call(self, i: int) -> None:
        log, Message = self.log, self.Message
        log(Message(role="user", content=USER))
        log(Message(role="assistant", content=ANSWER, model=MODEL, provider="openai",
                    input_tokens=120, output_tokens=i, cost_usd=0.0012))
        log(self.ToolExecution(name="search", call_id="call_1", arguments=ARGS, result=RESULT,
                               requestor="agent"))

    def close(self) -> None:
        self.block.__exit__(None, None, None)
        super().close()


class SinkCounted(Sdk):
    """Peers: drops are the spans the sink did not receive after flush."""

    records_per_call = 1

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls = 0

    def before_round(self) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + "/_reset", data=b"", method="POST")).read()
        self.calls = 0

    def dropped(self) -> int:
        got = json.loads(urllib.request.urlopen(self.url + "/_count").read())["spans"]
        return max(0, self.calls - int(got))


class Otel(SinkCounted):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces")))
        trace.set_tracer_provider(self.provider)
        self.tracer = trace.get_tracer("bench")

    def call(self, i: int) -> None:
        self.calls += 1
        with self.tracer.start_as_current_span("chat " + MODEL) as span:
            span.set_attributes({
                "gen_ai.system": "openai",
                "gen_ai.request.model": MODEL,
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": USER,
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": ANSWER,
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": i,
                "gen_ai.usage.cost": 0.0012,
                "tool.name": "search",
                "tool.call_id": "call_1",
                "tool.arguments": ARGS,
                "tool.result": json.dumps(RESULT),
            })

    def flush(self) -> None:
        self.provider.force_flush(120_000)

    def close(self) -> None:
        self.provider.shutdown()


class Langfuse(SinkCounted):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        from langfuse import Langfuse as Client

        self.lf = Client(public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url=url)

    def call(self, i: int) -> None:
        self.calls += 1
        gen = self.lf.start_observation(
            name="chat", as_type="generation", model=MODEL,
            input=[{"role": "user", "content": USER}],
            output={"role": "assistant", "content": ANSWER},
            usage_details={"input": 120, "output": i},
            cost_details={"total": 0.0012},
            metadata={"tool": {"name": "search", "call_id": "call_1", "arguments": ARGS, "result": RESULT}},
        )
        gen.end()

    def flush(self) -> None:
        self.lf.flush()

    def close(self) -> None:
        self.lf.shutdown()


SDKS: Dict[str, Callable[[str], Sdk]] = {
    "floor": lambda url: Floor(),
    "caribou": Caribou,
    "caribou-turn": CaribouTurn,
    "otel": Otel,
    "langfuse": Langfuse,
}


def burst(sdk: Sdk, calls: int) -> Dict[str, Any]:
    sdk.before_round()
    dropped_before = sdk.dropped() if isinstance(sdk, Caribou) else 0
    walls = array("q", bytes(8 * calls))
    clock = time.perf_counter_ns
    call = sdk.call
    cpu0 = time.process_time_ns()
    thread0 = time.thread_time_ns()
    start = clock()
    for i in range(calls):
        t = clock()
        call(i)
        walls[i] = clock() - t
    loop_ns = clock() - start
    thread_ns = time.thread_time_ns() - thread0
    f0 = clock()
    sdk.flush()
    flush_ns = clock() - f0
    cpu_ns = time.process_time_ns() - cpu0
    if isinstance(sdk, SinkCounted):
        time.sleep(0.2)  # the sink counts after it answered
    dropped = sdk.dropped() - dropped_before
    s = sorted(walls)
    return {
        "median_ns": percentile(s, 50),
        "p99_ns": percentile(s, 99),
        "p999_ns": percentile(s, 99.9),
        "mean_ns": loop_ns / calls,
        "cpu_ns": cpu_ns / calls,
        "agent_cpu_ns": thread_ns / calls,
        "flush_ms": flush_ns / 1e6,
        "dropped": dropped,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sdk", choices=sorted(SDKS))
    ap.add_argument("url")
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1_000)
    args = ap.parse_args()
    sdk = SDKS[args.sdk](args.url)
    rss_start = rss_now_kb()
    for i in range(args.warmup):
        sdk.call(i)
    sdk.flush()
    rounds = [burst(sdk, args.calls) for _ in range(args.rounds)]
    sdk.close()
    out = {
        "sdk": args.sdk,
        "calls": args.calls,
        "records_per_call": sdk.records_per_call,
        "rounds": rounds,
        "rss_start_mb": rss_start / 1024,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
