"""Posting generated traces to a Kestrel from several client processes at once, timed from a
common start to the last acknowledgement (Kestrel answers a batch only after it is committed).

Each client process first builds all its batches (gzip-compressed ingest bodies, ``gen.py``), then
waits for the others; only the posting is timed. Used by ``ingest.py`` and ``query.py``.
"""

from __future__ import annotations

import gzip
import http.client
import json
import multiprocessing as mp
import os
import threading
import time
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from _servers import proc_stat
from gen import Generator, body


def api(url: str, method: str, path: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read() or b"null")


def _client(url: str, seed: int, items: int, run_id: Optional[str], batch_records: int,
            barrier: Any, out: Any) -> None:
    gen = Generator(seed=seed, salt=seed, run_id=run_id)
    bodies: List[Tuple[bytes, int]] = []
    made = 0
    for batch in gen.batches(items, batch_records):
        n = sum(1 for r in batch if r["kind"] == "item")
        made += n
        bodies.append((gzip.compress(body(batch), compresslevel=1), n))
    barrier.wait()
    host = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=300)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    start, cpu0 = time.perf_counter(), time.process_time()
    records = 0
    for data, _ in bodies:
        conn.request("POST", "/api/v1/ingest", body=data, headers=headers)
        resp = conn.getresponse()
        answer = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"ingest answered {resp.status}: {answer[:300]!r}")
        records += json.loads(answer).get("accepted", 0)
    out.put({"items": made, "records": records, "seconds": time.perf_counter() - start,
             "cpu_s": time.process_time() - cpu0})


def thread_cpu(pid: int, name: str) -> float:
    """CPU seconds used so far by a process's threads called ``name`` (Linux truncates thread names
    to 15 characters: Kestrel's writer is ``kestrel-sqlite-``)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm == name:
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


WRITER_THREAD = "kestrel-sqlite-"


class Sampler:
    """Samples a process's RSS every 100 ms; CPU (the whole process's, and its store writer
    thread's) from /proc at start and stop."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_rss, self._stop = pid, 0.0, threading.Event()
        self.cpu0, _ = proc_stat(pid)
        self.writer0 = thread_cpu(pid, WRITER_THREAD)
        self.t0 = time.perf_counter()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_rss = max(self.peak_rss, proc_stat(self.pid)[1])

    def stop(self) -> Dict[str, float]:
        self._stop.set()
        self.thread.join()
        cpu, rss = proc_stat(self.pid)
        writer = thread_cpu(self.pid, WRITER_THREAD)
        elapsed = time.perf_counter() - self.t0
        return {"cpu_cores": (cpu - self.cpu0) / elapsed, "cpu_s": cpu - self.cpu0,
                "writer_cpu_s": writer - self.writer0, "peak_rss_mb": max(self.peak_rss, rss)}


def post_parallel(url: str, items: int, clients: int, server_pid: int, run_id: Optional[str] = None,
                  batch_records: int = 1000, seed0: int = 100) -> Dict[str, Any]:
    """Posts ``items`` items (whole traces) from ``clients`` processes; returns the rate and the
    server's CPU and RSS over the posting."""
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(clients + 1), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, seed0 + i, items // clients, run_id, batch_records, barrier, out))
             for i in range(clients)]
    for p in procs:
        p.start()
    barrier.wait()
    sampler = Sampler(server_pid)
    start = time.perf_counter()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - start
    server = sampler.stop()
    for p in procs:
        p.join()
    total_items = sum(r["items"] for r in results)
    total_records = sum(r["records"] for r in results)
    return {"items": total_items, "records": total_records, "seconds": elapsed,
            "items_per_s": total_items / elapsed, "records_per_s": total_records / elapsed,
            "client_cpu_s": sum(r["cpu_s"] for r in results), **server}
