"""An agent process for the fault suite: logs labelled traces with the real SDK, then prints what
the SDK reported as JSON lines (``{"role": ..., "report": {...}, "stats": {...}}``).

Configured by the environment like any user's agent (``KESTREL_URL``, ``CARIBOU_SPOOL_DIR``, ...).

    agent.py log --prefix P --traces N --items K [--flush SECONDS] [--sigkill-after-flush]
    agent.py deliver [--wait SECONDS]     # a later process: replays the spool until it is empty
    agent.py prefork --prefix P --workers W --traces N --items K   # fork after configure
    agent.py mp --prefix P --workers W --traces N --items K        # multiprocessing, fork start

Trace ids are ``<prefix><i>`` and item contents ``<trace id>:<k>``, which is what the suite's
accounting reads back.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, List

import caribou
from caribou import Message


def emit(role: str, report: Any = None, **extra: Any) -> None:
    out: Dict[str, Any] = {"role": role, "pid": os.getpid(), "stats": caribou.stats()}
    if report is not None:
        out["report"] = {
            "sent": report.sent,
            "spooled": report.spooled,
            "dropped": report.dropped,
            "pending": report.pending,
            "timed_out": report.timed_out,
        }
    out.update(extra)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def log_traces(prefix: str, traces: int, items: int, start: int = 0) -> List[str]:
    ids = []
    for i in range(start, start + traces):
        trace_id = f"{prefix}{i}"
        with caribou.trace_run({"trace_id": trace_id, "datapoint_id": trace_id}):
            for k in range(items):
                caribou.log(Message(role="user", content=f"{trace_id}:{k}"))
        ids.append(trace_id)
    return ids


def configure() -> None:
    caribou.configure(
        run_id=os.environ.get("FAULT_PROJECT", "faults"),
        phase="prod",
        connect_timeout=0.5,
        request_timeout=float(os.environ.get("FAULT_REQUEST_TIMEOUT", "3")),
        flush_interval=0.05,
    )


def cmd_log(a: argparse.Namespace) -> None:
    configure()
    log_traces(a.prefix, a.traces, a.items)
    report = caribou.flush(timeout=a.flush)
    emit("log", report)
    if a.sigkill_after_flush:
        os.kill(os.getpid(), signal.SIGKILL)


def spool_backlog() -> int:
    """Batch files under the spool folder (in its endpoints' subfolders), claimed or not."""
    folder = os.environ["CARIBOU_SPOOL_DIR"]
    return sum(1 for _, _, names in os.walk(folder) for name in names if ".batch" in name)


def cmd_deliver(a: argparse.Namespace) -> None:
    configure()  # starts the exporter, which reads the spool left by earlier processes
    deadline = time.monotonic() + a.wait
    while spool_backlog() > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    emit("deliver", caribou.flush(timeout=10), backlog=spool_backlog())


def cmd_prefork(a: argparse.Namespace) -> None:
    """gunicorn-style: configure in the master, then fork workers while a master thread is busy
    logging (its locks may be held at the moment of the fork)."""
    configure()
    stop = threading.Event()
    master_count = [0]

    def master_traffic() -> None:
        while not stop.is_set():
            log_traces(a.prefix + "m", 1, a.items, start=master_count[0])
            master_count[0] += 1
            time.sleep(0.002)

    t = threading.Thread(target=master_traffic)
    t.start()
    pids = []
    for w in range(a.workers):
        time.sleep(0.02)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                log_traces(f"{a.prefix}w{w}-", a.traces, a.items)
                emit("worker", caribou.flush(timeout=30))
                code = 0
            finally:
                # A worker ends like a gunicorn worker: through sys.exit, so atexit runs.
                sys.exit(code)
        pids.append(pid)
    codes = [os.waitpid(pid, 0)[1] for pid in pids]
    stop.set()
    t.join()
    emit("master", caribou.flush(timeout=30), master_traces=master_count[0], worker_status=codes)


def _mp_worker(prefix: str, traces: int, items: int, out: Any) -> None:
    log_traces(prefix, traces, items)
    r = caribou.flush(timeout=30)
    out.put({"sent": r.sent, "spooled": r.spooled, "pending": r.pending, "dropped": r.dropped})


def cmd_mp(a: argparse.Namespace) -> None:
    configure()
    log_traces(a.prefix + "parent", 1, a.items)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_mp_worker, args=(f"{a.prefix}p{w}-", a.traces, a.items, out)) for w in range(a.workers)]
    for p in procs:
        p.start()
    reports = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    emit("mp", caribou.flush(timeout=30), workers=reports, exitcodes=[p.exitcode for p in procs])


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("log", "prefork", "mp"):
        s = sub.add_parser(name)
        s.add_argument("--prefix", required=True)
        s.add_argument("--traces", type=int, default=10)
        s.add_argument("--items", type=int, default=5)
        s.add_argument("--workers", type=int, default=4)
        s.add_argument("--flush", type=float, default=30)
        s.add_argument("--sigkill-after-flush", action="store_true")
    d = sub.add_parser("deliver")
    d.add_argument("--wait", type=float, default=60)
    a = p.parse_args()
    {"log": cmd_log, "deliver": cmd_deliver, "prefork": cmd_prefork, "mp": cmd_mp}[a.cmd](a)


if __name__ == "__main__":
    main()
