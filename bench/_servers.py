"""Starting and stopping what the benches talk to: a release Kestrel and the peers' sink, each on a
free 127.0.0.1 port, with its data in a temporary folder. Everything started here is stopped by
``stop()`` (and the data folder deleted), also when the bench fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict:
    """The environment without the caller's KESTREL_* / CARIBOU_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KESTREL_", "CARIBOU_"))}


def kestrel_binary() -> Path:
    if os.environ.get("KESTREL_BIN"):
        return Path(os.environ["KESTREL_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    return target / "release" / "kestrel"


def wait_up(url: str, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + path, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up in {timeout} s")
            time.sleep(0.05)


class Server:
    def __init__(self, proc: "subprocess.Popen[bytes]", url: str, data_dir: Optional[Path]) -> None:
        self.proc, self.url, self.data_dir = proc, url, data_dir

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def start_kestrel(data_dir: Optional[Path] = None, extra: Optional[List[str]] = None) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    owned = data_dir is None
    data = Path(tempfile.mkdtemp(prefix="kestrel-bench-")) if data_dir is None else data_dir
    cmd = [str(kestrel_binary()), "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", str(data)] + (extra or [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    server = Server(proc, url, data if owned else None)
    try:
        wait_up(url, "/healthz")
    except Exception:
        server.stop()
        raise
    return server


def start_sink() -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, str(BENCH / "sink.py"), str(port)], stdout=subprocess.DEVNULL,
                            env=clean_env())
    server = Server(proc, url, None)
    try:
        wait_up(url, "/_count")
    except Exception:
        server.stop()
        raise
    return server


def proc_stat(pid: int) -> "tuple[float, float]":
    """(CPU seconds used so far, RSS in MB) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_mb = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss_mb


def machine() -> str:
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kb = 0
    return f"{os.cpu_count()} cores ({model}), {mem_kb / 2**20:.1f} GiB RAM, {time.strftime('%Y-%m-%d %H:%M %Z')}"
