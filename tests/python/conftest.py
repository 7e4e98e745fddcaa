"""Fixtures of the Python SDK tests: a real Kestrel on a free 127.0.0.1 port, read back over HTTP.

The Kestrel binary is ``$KESTREL_BIN``, else ``$CARGO_TARGET_DIR/debug/kestrel``, else
``<repo>/target/debug/kestrel``; when none exists it is built with ``cargo build -p kestrel``.
The server runs for the whole session with its data in a temporary folder and is killed at the
end. Every test that logs uses its own project, so tests never see each other's traces.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

import caribou

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
# The examples' deterministic stand-ins (`_fakes`) tell the tests what the examples logged.
sys.path.insert(0, str(EXAMPLES))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kestrel_proc import clean_env as server_env  # noqa: E402
from kestrel_proc import free_port as _free_port  # noqa: E402
from kestrel_proc import kestrel_binary as _kestrel_binary  # noqa: E402


class Kestrel:
    """A running Kestrel and a small HTTP client for reading it back."""

    def __init__(self, url: str, proc: "subprocess.Popen[bytes]", data_dir: Path) -> None:
        self.url = url
        self.proc = proc
        self.data_dir = data_dir

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def status_of(self, method: str, path: str, body: Any = None) -> int:
        try:
            self.request(method, path, body)
        except urllib.error.HTTPError as e:
            return e.code
        return 200

    def trace(self, trace_id: str) -> Dict[str, Any]:
        return self.get("/api/v1/traces/" + urllib.parse.quote(trace_id, safe=""))

    def traces(self, **filters: Any) -> List[Dict[str, Any]]:
        """Every trace matching the filters (all pages)."""
        out: List[Dict[str, Any]] = []
        params = {k: str(v) for k, v in filters.items() if v is not None}
        params.setdefault("limit", "1000")
        while True:
            page = self.get("/api/v1/traces?" + urllib.parse.urlencode(params))
            out += page["data"]
            if not page.get("next_cursor"):
                return out
            params["cursor"] = page["next_cursor"]

    def wait_trace(
        self, trace_id: str, ready: Callable[[Dict[str, Any]], bool] = lambda t: True, timeout: float = 10.0
    ) -> Dict[str, Any]:
        """The trace once `ready(trace)` holds (Kestrel acknowledges before a reader may see
        everything derived; this waits out that lag, never longer than `timeout`)."""
        deadline = time.monotonic() + timeout
        last: Optional[Dict[str, Any]] = None
        while True:
            try:
                last = self.trace(trace_id)
                if ready(last):
                    return last
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    raise
            if time.monotonic() > deadline:
                raise AssertionError(f"trace {trace_id} not ready after {timeout}s; last seen: {last}")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def kestrel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kestrel]:
    with running_kestrel(tmp_path_factory.mktemp("kestrel-data")) as server:
        yield server


@contextlib.contextmanager
def running_kestrel(data_dir: Path, port: Optional[int] = None) -> Iterator[Kestrel]:
    """A `kestrel serve` on 127.0.0.1:`port` (a free one when None) with its data in `data_dir`,
    once it answers /healthz; stopped with SIGTERM on leaving. Its log is `<data_dir>.log`."""
    binary = _kestrel_binary()
    port = _free_port() if port is None else port
    url = f"http://127.0.0.1:{port}"
    log = open(data_dir.parent / f"{data_dir.name}.log", "wb")
    proc = subprocess.Popen(
        [str(binary), "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"kestrel exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"kestrel did not answer /healthz within 30s; see {log.name}")
            time.sleep(0.05)
        yield Kestrel(url, proc, data_dir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def project() -> str:
    """A project name of this test alone."""
    return "test-" + uuid.uuid4().hex[:12]


@pytest.fixture
def traced(kestrel: Kestrel, project: str) -> Iterator[str]:
    """Caribou configured for `prod` against the test Kestrel, filed under this test's project;
    yields the project name."""
    caribou.configure(run_id=project, phase="prod", endpoint=kestrel.url)
    caribou._caribou._reset_warnings()
    yield project
    caribou.flush(timeout=10)


@pytest.fixture
def disabled() -> Iterator[None]:
    """Caribou configured with no endpoint at all."""
    caribou.configure(endpoint="")
    caribou._caribou._reset_warnings()
    yield
    caribou.configure(endpoint="")


def run_python(
    code_or_path: "str | Path",
    kestrel_url: Optional[str],
    timeout: float = 120,
    args: Optional[List[str]] = None,
    env: Optional[Dict[str, str]] = None,
) -> "subprocess.CompletedProcess[str]":
    """Runs Python code (a string) or a script (a Path) in a fresh interpreter with KESTREL_URL
    set (or unset) and the variables of `env`; fails the test on a non-zero exit, showing its
    output."""
    extra = env
    env = server_env()
    env.update(extra or {})
    if kestrel_url is not None:
        env["KESTREL_URL"] = kestrel_url
    env["PYTHONUNBUFFERED"] = "1"
    if isinstance(code_or_path, Path):
        cmd = [sys.executable, str(code_or_path)]
        cwd = str(code_or_path.parent)
    else:
        cmd = [sys.executable, "-c", code_or_path]
        cwd = str(REPO)
    proc = subprocess.run(cmd + (args or []), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


def items_of(trace: Dict[str, Any], kind: Optional[str] = None) -> List[Dict[str, Any]]:
    """The trace's items (of one `type`), without the storage fields id/ts/turn_id."""
    out = []
    for it in trace["items"]:
        if kind is None or it["type"] == kind:
            out.append({k: v for k, v in it.items() if k not in ("id", "ts", "turn_id")})
    return out
