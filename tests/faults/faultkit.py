"""The fault suite's parts (fixtures in conftest.py): Kestrel processes we can kill, pause and restart; agents in their own
processes; and the accounting every scenario ends with.

Every scenario logs records whose content names them (``"<trace>:<k>"``), then reads Kestrel back
and reports one line::

    scenario=server_sigkill rounds=20 logged=N acked=N stored=N duplicated=0 lost=0

- ``logged``: records the agents logged (trace openings, items, closings);
- ``acked``: records the SDK says Kestrel acknowledged (sent directly, or later from the spool);
- ``stored``: logged records found in Kestrel (an item by its content; an opening by the turn's
  start; a closing by the trace's status);
- ``duplicated``: items stored more than once; ``lost``: logged records not stored.

A scenario fails on any loss or duplicate, and on an SDK that reported less than it did. The lines
are printed again at the end of the run (even with ``-q``). Each case is bounded by ``SIGALRM``
(``CASE_TIMEOUT``), every subprocess by its own timeout; servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
AGENT = HERE / "agent.py"
CASE_TIMEOUT = 150
REPORT_LINES: List[str] = []

sys.path.insert(0, str(REPO / "tests"))
from kestrel_proc import clean_env, free_port, kestrel_binary  # noqa: E402


class Kestrel:
    """A `kestrel serve` on a fixed port and data folder, which can be killed and started again."""

    def __init__(self, data_dir: Path, port: Optional[int] = None, args: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = list(args)
        self.proc: "Optional[subprocess.Popen[bytes]]" = None
        self.starts = 0
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    def start(self, timeout: float = 30) -> "Kestrel":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(kestrel_binary()), "serve", "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)]
            + self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kestrel exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"kestrel did not start within {timeout}s; see {self.log_path}")
            time.sleep(0.02)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # -- reading back -------------------------------------------------------------------------

    def get(self, path: str, headers: Optional[Dict[str, str]] = None) -> Any:
        req = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(req, timeout=15) as resp:
            return json.loads(resp.read() or b"null")

    def trace(self, trace_id: str) -> Optional[Dict[str, Any]]:
        try:
            return self.get("/api/v1/traces/" + urllib.parse.quote(trace_id, safe=""))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


def spool_backlog(spool: Path) -> int:
    """Batch files in the spool folder (in its endpoints' subfolders), claimed or not."""
    # os.walk ignores entries that vanish while it reads (batches being claimed and sent).
    return sum(1 for _, _, names in os.walk(spool) for name in names if ".batch" in name)


def wait_spool_empty(spool: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while spool_backlog(spool) > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"spool {spool} still holds {spool_backlog(spool)} batches after {timeout}s")
        time.sleep(0.1)


def agent_env(url: str, spool: Path, **extra: str) -> Dict[str, str]:
    env = clean_env()
    env.update(
        KESTREL_URL=url,
        CARIBOU_SPOOL_DIR=str(spool),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(HERE) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.update(extra)
    return env


def run_agent(args: List[str], env: Dict[str, str], timeout: float = 60, check: bool = True) -> "subprocess.CompletedProcess[str]":
    """Runs agent.py in a fresh interpreter; returns it (stdout holds one JSON line per report)."""
    proc = subprocess.run(
        [sys.executable, str(AGENT)] + args, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(HERE)
    )
    if check:
        assert proc.returncode == 0, f"agent exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


def reports_of(stdout: str) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


class Expected:
    """What a scenario logged: trace id -> number of items (each trace also has an opening and a
    closing record)."""

    def __init__(self) -> None:
        self.traces: Dict[str, int] = {}

    def add(self, trace_id: str, items: int) -> None:
        self.traces[trace_id] = self.traces.get(trace_id, 0) + items

    @property
    def records(self) -> int:
        return sum(n + 2 for n in self.traces.values())


def account(kestrel: Kestrel, expected: Expected, settle: float = 15) -> Dict[str, int]:
    """Reads every expected trace back and counts stored, duplicated and lost records. Traces not
    complete yet are read again for up to `settle` seconds (what Kestrel acknowledged may take a
    moment to show in derived data)."""
    found: Dict[str, Dict[str, int]] = {}
    todo = list(expected.traces)
    deadline = time.monotonic() + settle
    while True:
        again: List[str] = []
        for trace_id in todo:
            n_items = expected.traces[trace_id]
            counts = _read_trace(kestrel, trace_id, n_items)
            found[trace_id] = counts
            if counts["stored"] < n_items + 2:
                again.append(trace_id)
        todo = again
        if not todo or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    stored = sum(c["stored"] for c in found.values())
    duplicated = sum(c["duplicated"] for c in found.values())
    return {"stored": stored, "duplicated": duplicated, "lost": expected.records - stored}


def _read_trace(kestrel: Kestrel, trace_id: str, n_items: int) -> Dict[str, int]:
    t = kestrel.trace(trace_id)
    if t is None:
        return {"stored": 0, "duplicated": 0}
    contents = [str(i.get("content")) for i in t.get("items", [])]
    unique = set(contents)
    mine = {c for c in unique if c.startswith(trace_id + ":")}
    foreign = [c for c in contents if not c.startswith(trace_id + ":")]
    assert not foreign, f"{trace_id} holds items of other traces: {foreign[:5]}"
    opened = any(turn.get("started_at") is not None for turn in t.get("turns", []))
    closed = t.get("status") not in (None, "RUNNING")
    stored = min(len(mine), n_items) + int(opened) + int(closed)
    return {"stored": stored, "duplicated": len(contents) - len(unique)}


def report(scenario: str, expected: Expected, counts: Dict[str, int], acked: int, **extra: Any) -> None:
    """Prints the scenario line, keeps it for the summary, and fails on loss or duplicates."""
    fields = " ".join(f"{k}={v}" for k, v in extra.items())
    line = (
        f"scenario={scenario} {fields + ' ' if fields else ''}logged={expected.records} acked={acked} "
        f"stored={counts['stored']} duplicated={counts['duplicated']} lost={counts['lost']}"
    )
    print(line)
    REPORT_LINES.append(line)
    assert counts["lost"] == 0 and counts["duplicated"] == 0, line
    assert acked >= 0
