"""Bench 1: the SDK's cost in the agent's hot path, against OpenTelemetry and Langfuse in the same run.

    bench/run-sdk.sh                       # builds and installs what it needs, then runs this
    bench/.venv/bin/python bench/sdk_hot_path.py [--calls 20000] [--passes 3] [--rounds 1] [--only caribou,otel]

Starts a release Kestrel (for Caribou) and the local sink (for the peers), runs each SDK in its own
process (``sdk_worker.py``), one after the other, ``--passes`` times over (each pass runs every
SDK for ``--rounds`` rounds), and prints one table. Figures are medians over all rounds; "above
floor" subtracts the no-SDK loop, and the ratios compare those differences. Passes interleave the
SDKs in time: this 2-core VM flips between a fast and a slow state for tens of seconds (the same
code measured 6 and 12 µs per call), and a flip then weighs on every SDK instead of on whichever
ran at the time. The ratios of each pass are printed too, for their spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any, Dict, List

from _servers import BENCH, clean_env, machine, start_kestrel, start_sink

ORDER = ["floor", "caribou", "caribou-turn", "otel", "langfuse"]
LABEL = {
    "floor": "no SDK (floor)",
    "caribou": "Caribou, trace_run per call",
    "caribou-turn": "Caribou, calls in one trace_run",
    "otel": "OpenTelemetry SDK + OTLP/HTTP",
    "langfuse": "Langfuse SDK, one generation",
}


def run_worker(sdk: str, url: str, args: argparse.Namespace) -> Dict[str, Any]:
    cmd = [sys.executable, str(BENCH / "sdk_worker.py"), sdk, url, "--calls", str(args.calls),
           "--rounds", str(args.rounds), "--warmup", str(args.warmup)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=clean_env(), timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def med(rounds: List[Dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def ratio(results: Dict[str, Dict[str, Any]], ours: str, peer: str, key: str) -> float:
    """How many times less than `peer` `ours` costs above the floor (medians of `key`)."""
    floor = med(results["floor"]["rounds"], key)
    return (med(results[peer]["rounds"], key) - floor) / max(med(results[ours]["rounds"], key) - floor, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1_000)
    ap.add_argument("--only", default=",".join(ORDER))
    args = ap.parse_args()
    wanted = [s for s in ORDER if s in args.only.split(",")]
    if "floor" not in wanted:
        wanted.insert(0, "floor")

    kestrel = start_kestrel() if any(s.startswith("caribou") for s in wanted) else None
    sink = start_sink()
    results: Dict[str, Dict[str, Any]] = {}
    passes: List[Dict[str, Dict[str, Any]]] = []
    try:
        for p in range(args.passes):
            this: Dict[str, Dict[str, Any]] = {}
            for sdk in wanted:
                url = kestrel.url if kestrel is not None and sdk.startswith("caribou") else sink.url
                this[sdk] = run_worker(sdk, url, args)
                all_of = results.setdefault(sdk, {"rounds": [], "rss_peak_mb": 0.0})
                all_of["rounds"] += this[sdk]["rounds"]
                all_of["rss_peak_mb"] = max(all_of["rss_peak_mb"], this[sdk]["rss_peak_mb"])
                print(f"  pass {p + 1}: ran {sdk}", file=sys.stderr, flush=True)
            passes.append(this)
    finally:
        if kestrel is not None:
            kestrel.stop()
        sink.stop()

    floor = results["floor"]["rounds"]
    floor_med, floor_cpu = med(floor, "median_ns"), med(floor, "cpu_ns")
    print(f"SDK hot path: {args.calls:,} calls x {args.rounds} round(s) x {args.passes} passes, per call Message in (500 chars), "
          f"Message out (500 chars, tokens, cost), ToolExecution")
    print(f"machine: {machine()}")
    print()
    print("| SDK | median ns | p99 ns | p99.9 ns | median above floor | CPU µs/call (incl. export) "
          "| CPU above floor | agent-thread CPU µs/call | peak RSS MB | dropped (of calls) | flush ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    above: Dict[str, float] = {}
    above_cpu: Dict[str, float] = {}
    for sdk in wanted:
        r = results[sdk]["rounds"]
        m, cpu = med(r, "median_ns"), med(r, "cpu_ns")
        above[sdk], above_cpu[sdk] = m - floor_med, cpu - floor_cpu
        dropped = max(x["dropped"] for x in r)
        unit = "records" if sdk.startswith("caribou") else "spans"
        flush_ms = med(r, "flush_ms")
        print(f"| {LABEL[sdk]} | {m:,.0f} | {med(r, 'p99_ns'):,.0f} | {med(r, 'p999_ns'):,.0f} | "
              f"{'–' if sdk == 'floor' else f'{above[sdk]:,.0f}'} | {cpu / 1000:.1f} | "
              f"{'–' if sdk == 'floor' else f'{above_cpu[sdk] / 1000:.1f}'} | {med(r, 'agent_cpu_ns') / 1000:.1f} | {results[sdk]['rss_peak_mb']:.0f} | "
              f"{'–' if sdk == 'floor' else f'{dropped:,} {unit}'} | "
              f"{'–' if sdk == 'floor' else f'{flush_ms:,.0f}'} |")
    print()
    for ours in ("caribou", "caribou-turn"):
        if ours not in above:
            continue
        for peer, bar in (("otel", 10), ("langfuse", 50)):
            if peer not in above:
                continue
            wall = above[peer] / max(above[ours], 1.0)
            cpu = above_cpu[peer] / max(above_cpu[ours], 1.0)
            verdict = "meets" if wall >= bar else "below"
            each = ", ".join(f"{ratio(r, ours, peer, 'median_ns'):.1f}x" for r in passes)
            print(f"{LABEL[ours]} vs {LABEL[peer]}: {wall:.1f}x less wall above floor, {cpu:.1f}x less CPU "
                  f"(bar {bar}x: {verdict}); wall per pass: {each}")
        drops = max(x["dropped"] for x in results[ours]["rounds"])
        print(f"{LABEL[ours]}: {drops} records dropped on the bursts with default settings "
              f"(bar 0: {'meets' if drops == 0 else 'below'})")


if __name__ == "__main__":
    main()
