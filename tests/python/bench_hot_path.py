"""The agent's hot path: what logging costs above bare Python (not a pytest test; run it by hand).

    .venv/bin/python tests/python/bench_hot_path.py            # starts a Kestrel like the tests do
    KESTREL_URL=http://127.0.0.1:8750 .venv/bin/python tests/python/bench_hot_path.py

One "call" is what an instrumented LLM call logs: two Messages (500-character contents, token
counts, cost) and one ToolExecution, inside ``trace_run``. 20,000 calls in a tight loop, three
ways: the bare loop (the same values built, nothing logged), all calls in one trace, and one
trace per call. Prints ns per call (median of 5 rounds), the cost above bare, and what the
exporter sent and dropped.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import caribou  # noqa: E402
from caribou import Message, ToolExecution  # noqa: E402

N = 20_000
ROUNDS = 5
USER = "u" * 500
ANSWER = "a" * 500
ARGS = '{"query": "caribou migration", "limit": 5}'
RESULT = {"hits": 5, "top": "https://example.org/caribou"}


def bare() -> None:
    for i in range(N):
        (dict(role="user", content=USER), dict(role="assistant", content=ANSWER, model="gpt-4o", provider="openai",
              input_tokens=120, output_tokens=i, cost_usd=0.0012),
         dict(name="search", call_id="call_1", arguments=ARGS, result=RESULT, requestor="agent"))


def one_trace() -> None:
    log = caribou.log
    with caribou.trace_run({"datapoint_id": "bench"}):
        for i in range(N):
            log(Message(role="user", content=USER))
            log(Message(role="assistant", content=ANSWER, model="gpt-4o", provider="openai",
                        input_tokens=120, output_tokens=i, cost_usd=0.0012))
            log(ToolExecution(name="search", call_id="call_1", arguments=ARGS, result=RESULT, requestor="agent"))


def trace_per_call() -> None:
    log = caribou.log
    for i in range(N):
        with caribou.trace_run({"datapoint_id": "bench"}):
            log(Message(role="user", content=USER))
            log(Message(role="assistant", content=ANSWER, model="gpt-4o", provider="openai",
                        input_tokens=120, output_tokens=i, cost_usd=0.0012))
            log(ToolExecution(name="search", call_id="call_1", arguments=ARGS, result=RESULT, requestor="agent"))


def measure(fn) -> "tuple[float, float]":  # type: ignore[no-untyped-def]
    """Median wall ns per call, and median CPU ns per call of the whole process (the agent's
    thread and the exporter thread, while the loop runs)."""
    walls, cpus = [], []
    for _ in range(ROUNDS):
        start, cpu = time.perf_counter_ns(), time.process_time_ns()
        fn()
        walls.append((time.perf_counter_ns() - start) / N)
        cpus.append((time.process_time_ns() - cpu) / N)
        caribou.flush(timeout=60)  # each round starts with an empty queue
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    url = os.environ.get("KESTREL_URL")
    server = None
    if not url:
        from conftest import _free_port, _kestrel_binary, server_env

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        data = tempfile.mkdtemp(prefix="kestrel-bench-")
        server = subprocess.Popen([str(_kestrel_binary()), "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env())
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
    try:
        caribou.configure(run_id="bench", phase="prod", endpoint="")
        base, _ = measure(bare)
        off, _ = measure(one_trace)
        caribou.configure(run_id="bench", phase="prod", endpoint=url)
        one, one_cpu = measure(one_trace)
        per, per_cpu = measure(trace_per_call)
        s = caribou.stats()
        print(f"{N} calls x {ROUNDS} rounds (2 Messages of 500 chars + 1 ToolExecution per call), Kestrel at {url}")
        print(f"  bare Python                    {base:7.0f} ns/call")
        print(f"  no endpoint (no-op)            {off:7.0f} ns/call  (+{off - base:.0f} above bare)")
        print(f"  one trace_run, sending         {one:7.0f} ns/call  (+{one - base:.0f} above bare; process CPU {one_cpu:.0f} ns/call)")
        print(f"  trace_run per call, sending    {per:7.0f} ns/call  (+{per - base:.0f} above bare; process CPU {per_cpu:.0f} ns/call)")
        print(f"  exporter: enqueued={s['enqueued']} sent={s['sent']} dropped={s['dropped']} pending={s['pending']}")
        caribou.shutdown()
    finally:
        if server is not None:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
