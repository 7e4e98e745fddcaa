"""Benches 3 and 4: query latency at scale, and how each figure grows with the item count.

    bench/run-query.sh                                  # 100k and 1M items
    bench/.venv/bin/python bench/query.py --sizes 100000,1000000,10000000 [--repeat 20]
    bench/run-query.sh --sizes 1000000 --data-dir /tmp/kq --reuse   # load once, time many times

For each size: a fresh release Kestrel, loaded through its ingest API with realistic traces
(``gen.py``; 70% of them in one training run of 100 steps, the rest in a prod project) plus one
trace of 30,000 items; then, once the full-text index caught up, each query is timed ``--repeat``
times over HTTP (first 50 traces, the API's default page): the search-language examples, the
run's per-step aggregates, the lists by reward, cost, duration and tokens, and opening the
30,000-item trace (its first page of items; the whole trace both as received and as parsed by
this Python client, which takes most of the latter). Prints a latency table per size and a
growth table across sizes (p50 latency, load rate, index catch-up, disk use).

``--data-dir DIR`` keeps each size's data in ``DIR/<size>`` (with ``bench-query.json``: the run id,
the big trace's id, the load figures) instead of a temporary folder; with ``--reuse`` a size whose
folder is already loaded is not loaded again, so the queries can be timed against a new Kestrel
binary without re-posting 10M items (the store migrates the file on opening, as it would in use).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
import urllib.error
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from _servers import machine, start_kestrel
from gen import Generator, body
from load import api, post_parallel

SEARCHES = [
    "status:error",
    "tag:premium_tier",
    "meta.customer_id:cust_123",
    "meta.latency_ms>400",
    "model:gpt-4o",
    "step:10..20",
    "grade.reward>=0.5",
    "cost>0.01",
    "-tag:internal",
    '"timed out"',
    "kari",
    'status:error tag:premium_tier meta.customer_id:cust_123 meta.latency_ms>400 model:gpt-4o step:10..20 '
    'grade.reward>=0.5 cost>0.01 -tag:internal "timed out"',
]


def timed(url: str, path: str, repeat: int) -> Tuple[float, float, Any]:
    api(url, "GET", path)  # warm
    times = []
    answer = None
    for _ in range(repeat):
        t = time.perf_counter()
        answer = api(url, "GET", path)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    return statistics.median(times), p95, answer


def timed_bytes(url: str, path: str, repeat: int) -> Tuple[float, float, int]:
    """Like `timed`, until the answer's last byte is read (not parsed): what the server controls."""
    import urllib.request

    def get() -> bytes:
        with urllib.request.urlopen(url + path, timeout=300) as r:
            return r.read()

    get()  # warm
    times = []
    size = 0
    for _ in range(repeat):
        t = time.perf_counter()
        size = len(get())
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    return statistics.median(times), p95, size


def count(answer: Any) -> int:
    """Rows in an answer: a list, or a page (``data``)."""
    if isinstance(answer, list):
        return len(answer)
    return len(answer.get("data") or answer.get("items") or [])


def wait_indexed(url: str) -> float:
    start = time.perf_counter()
    while True:
        st = api(url, "GET", "/api/v1/status")["search_index"]
        if st["unindexed_chunks"] == 0:
            return time.perf_counter() - start
        time.sleep(0.2)


def du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def load(url: str, items: int, clients: int, pid: int) -> Dict[str, Any]:
    """Loads ``items`` generated items and the 30,000-item trace; returns what the timing needs."""
    run = api(url, "POST", "/api/v1/runs", {"project": "bench", "phase": "train", "name": "query"})
    load = post_parallel(url, items, clients, pid, run_id=run["id"])
    # The big trace: 30,000 items in batches of 1,000 records.
    big = Generator(seed=99, salt=999, run_id=None).trace(n_items=30_000)
    for i in range(0, len(big), 1000):
        api_post_raw(url, body(big[i:i + 1000]))
    lag = wait_indexed(url)
    return {"run_id": run["id"], "big_id": big[0]["trace_id"], "load": load, "index_lag_s": lag}


def one_size(items: int, repeat: int, clients: int, data_root: Optional[Path], reuse: bool) -> Dict[str, Any]:
    data_dir = None if data_root is None else data_root / str(items)
    meta_file = None if data_dir is None else data_dir / "bench-query.json"
    loaded = meta_file is not None and reuse and meta_file.exists()
    if data_dir is not None and not loaded:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
    server = start_kestrel(data_dir)
    try:
        url = server.url
        if loaded and meta_file is not None:
            meta = json.loads(meta_file.read_text())
            print(f"  reusing {data_dir} (loaded before)", file=sys.stderr, flush=True)
            wait_indexed(url)
        else:
            print(f"  loading {items:,} items", file=sys.stderr, flush=True)
            meta = load(url, items, clients, server.pid)
            if meta_file is not None:
                meta_file.write_text(json.dumps(meta))
        run_id, big_id = meta["run_id"], meta["big_id"]
        rows: List[Tuple[str, float, float, str]] = []
        for q in SEARCHES:
            path = "/api/v1/traces?" + urllib.parse.urlencode({"q": q})
            p50, p95, ans = timed(url, path, repeat)
            rows.append((f"search `{q}`" if len(q) < 40 else "search: all examples ANDed", p50, p95,
                         f"{count(ans)} traces"))
        p50, p95, ans = timed(url, f"/api/v1/runs/{run_id}/steps", repeat)
        rows.append(("run per-step aggregates (100 steps)", p50, p95, f"{count(ans)} steps"))
        p50, p95, ans = timed(url, "/api/v1/traces?" + urllib.parse.urlencode({"run_id": run_id, "sort": "grade_desc"}), repeat)
        rows.append(("run's traces by reward (top 50)", p50, p95, f"{count(ans)} traces"))
        for sort, what in [("cost_desc", "cost"), ("duration_desc", "duration"), ("tokens_desc", "tokens")]:
            p50, p95, ans = timed(url, "/api/v1/traces?" + urllib.parse.urlencode({"sort": sort}), repeat)
            rows.append((f"all traces by {what} (top 50)", p50, p95, f"{count(ans)} traces"))
        # The project page's sort buttons: the same lists within a project.
        p50, p95, ans = timed(url, "/api/v1/traces?" + urllib.parse.urlencode({"sort": "cost_desc", "project": "bench"}), repeat)
        rows.append(("a project's traces by cost (top 50)", p50, p95, f"{count(ans)} traces"))
        try:
            p50, p95, ans = timed(url, f"/api/v1/traces/{big_id}/items?limit=500", repeat)
            rows.append(("open a 30,000-item trace: first page of 500 items", p50, p95, f"{count(ans)} items"))
        except urllib.error.HTTPError as e:  # a Kestrel from before item paging
            rows.append(("open a 30,000-item trace: first page of 500 items", float("nan"), float("nan"),
                         f"HTTP {e.code}"))
        p50, p95, size = timed_bytes(url, f"/api/v1/traces/{big_id}", max(3, repeat // 2))
        rows.append(("open a 30,000-item trace: all items at once, received", p50, p95, f"{size / 1e6:.1f} MB"))
        p50, p95, ans = timed(url, f"/api/v1/traces/{big_id}", max(3, repeat // 4))
        rows.append(("open a 30,000-item trace: all items at once, parsed by Python", p50, p95,
                     f"{len(ans['items'])} items"))
        disk = du_mb(server.data_dir or data_dir) if (server.data_dir or data_dir) else 0.0
        return {"items": meta["load"]["items"] + 30_000, "load": meta["load"], "index_lag_s": meta["index_lag_s"],
                "rows": rows, "disk_mb": disk, "reused": loaded}
    finally:
        server.stop()


def api_post_raw(url: str, data: bytes) -> None:
    import urllib.request

    req = urllib.request.Request(url + "/api/v1/ingest", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=300).read()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--clients", type=int, default=min(4, os.cpu_count() or 2))
    ap.add_argument("--data-dir", type=Path, help="keep each size's data in DIR/<size> (default: a temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="with --data-dir: do not reload a size loaded before")
    args = ap.parse_args()
    if args.reuse and args.data_dir is None:
        ap.error("--reuse needs --data-dir")
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        results.append(one_size(size, args.repeat, args.clients, args.data_dir, args.reuse))

    print(f"Query latency over HTTP, release Kestrel, embedded SQLite store; {args.repeat} runs per query")
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min)")
    for r in results:
        print()
        again = "; data loaded by an earlier run" if r["reused"] else ""
        print(f"### {r['items']:,} items ({r['load']['items_per_s']:,.0f} items/s loaded{again}; "
              f"full-text index caught up {r['index_lag_s']:.1f} s after the last ack; {r['disk_mb']:,.0f} MB on disk)")
        print()
        print("| query | p50 ms | p95 ms | answer |")
        print("| --- | ---: | ---: | --- |")
        for label, p50, p95, what in r["rows"]:
            # The bar (p95 ≤ 50 ms) is for searches and aggregates, not for reading a whole trace.
            flag = " (over 50 ms)" if p95 > 50 and "30,000-item" not in label else ""
            print(f"| {label} | {p50:.1f} | {p95:.1f}{flag} | {what} |")
    if len(results) > 1:
        print()
        print("### Growth (p50 ms per query; load rate; index catch-up; disk)")
        print()
        head = " | ".join(f"{r['items']:,} items" for r in results)
        print(f"| figure | {head} | growth first to last |")
        print("|---" * (len(results) + 2) + "|")
        ratio = results[-1]["items"] / results[0]["items"]
        for i, (label, *_rest) in enumerate(results[0]["rows"]):
            vals = [r["rows"][i][1] for r in results]
            print(f"| {label} | " + " | ".join(f"{v:.1f}" for v in vals) +
                  f" | x{vals[-1] / max(vals[0], 0.01):.1f} (items x{ratio:.0f}) |")
        for key, label, fmt in (("items_per_s", "load, items/s", "{:,.0f}"),):
            vals = [r["load"][key] for r in results]
            print(f"| {label} | " + " | ".join(fmt.format(v) for v in vals) + f" | x{vals[-1] / vals[0]:.2f} |")
        vals = [r["index_lag_s"] for r in results]
        print("| index catch-up after last ack, s | " + " | ".join(f"{v:.1f}" for v in vals) + " | |")
        vals = [r["disk_mb"] for r in results]
        print("| disk MB | " + " | ".join(f"{v:,.0f}" for v in vals) + f" | x{vals[-1] / max(vals[0], 0.01):.1f} |")


if __name__ == "__main__":
    main()
