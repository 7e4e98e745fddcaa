"""The spool and the endpoint: batches spooled for one Kestrel reach that Kestrel only, whatever
spool folder processes share; an endpoint that cannot be used warns once and disables tracing.

Every Kestrel here is a real `kestrel serve`; "Kestrel A is down" is its port with nothing
listening, and A comes back on that same port. Agents are separate Python processes, as the
processes of a fleet sharing one spool folder are.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import urllib.error
import uuid
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

import caribou
from caribou import Message
from conftest import Kestrel, _free_port, items_of, run_python, running_kestrel

#: Long enough for a starting exporter to scan its spool and replay it (it does so at once).
REPLAY_WINDOW = 2.0


def batch_files(folder: Path) -> List[Path]:
    """Batch files (ready or claimed) anywhere under `folder`, sorted."""
    return sorted(Path(d) / n for d, _, names in os.walk(folder) for n in names if ".batch" in n)


def spool_env(folder: Path) -> Dict[str, str]:
    return {"CARIBOU_SPOOL_DIR": str(folder)}


def is_stored(kestrel: Kestrel, trace_id: str) -> bool:
    try:
        kestrel.trace(trace_id)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise
    return True


AGENT = """
import json, sys, time
import caribou
from caribou import Message
caribou.configure(run_id={project!r}, phase="prod")
with caribou.trace_run({{"datapoint_id": "d", "trace_id": {trace_id!r}}}):
    caribou.log(Message(role="user", content={content!r}))
report = caribou.flush(timeout=10)
time.sleep({linger})
print(json.dumps({{"sent": report.sent, "spooled": report.spooled, "pending": report.pending}}))
"""


def agent(project: str, trace_id: str, content: str, linger: float = 0.0) -> str:
    """An agent that logs one trace of one message, flushes, stays `linger` seconds, exits."""
    return AGENT.format(project=project, trace_id=trace_id, content=content, linger=linger)


def test_batches_spooled_for_one_kestrel_reach_only_that_kestrel(
    kestrel: Kestrel, project: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    port_a = _free_port()
    url_a = f"http://127.0.0.1:{port_a}"
    trace_a = f"trc_for_a_{uuid.uuid4().hex[:12]}"
    trace_b = f"trc_for_b_{uuid.uuid4().hex[:12]}"

    # 1. Kestrel A is down: the agent's trace goes to the (explicit) spool folder.
    out = run_python(agent(project, trace_a, "meant for A"), url_a, env=spool_env(spool))
    assert '"sent": 0' in out.stdout and '"pending": 0' in out.stdout, out.stdout
    spooled = batch_files(spool)
    assert spooled, "A's trace is on disk"

    # 2. A process for Kestrel B (up) with the same spool folder: it sends its own trace, and
    #    nothing spooled for A, however long it runs.
    run_python(agent(project, trace_b, "meant for B", linger=REPLAY_WINDOW), kestrel.url, env=spool_env(spool))
    assert items_of(kestrel.wait_trace(trace_b, lambda t: t["status"] == "COMPLETED"), "message")[0]["content"] == (
        "meant for B"
    )
    assert not is_stored(kestrel, trace_a), "a trace spooled for Kestrel A was delivered to Kestrel B"
    assert batch_files(spool) == spooled, "A's batches are kept, untouched, for A"

    # 3. Kestrel A is back on its port: the next process for A delivers A's trace.
    with running_kestrel(tmp_path / "kestrel-a", port=port_a) as kestrel_a:
        code = """
import os, time
import caribou
caribou.configure()
deadline = time.monotonic() + 30
while time.monotonic() < deadline and any(".batch" in n for _, _, ns in os.walk(os.environ["CARIBOU_SPOOL_DIR"]) for n in ns):
    time.sleep(0.05)
caribou.flush(timeout=10)
"""
        run_python(code, url_a, env=spool_env(spool))
        trace = kestrel_a.wait_trace(trace_a, lambda t: t["status"] == "COMPLETED")
        assert items_of(trace, "message") == [{"type": "message", "role": "user", "content": "meant for A"}]
        assert not is_stored(kestrel_a, trace_b)
    assert batch_files(spool) == [], "delivered and deleted"


@pytest.fixture
def caribou_log(caplog: pytest.LogCaptureFixture, disabled: None) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the `caribou` logger at WARNING and above; the SDK disabled before and after."""
    with caplog.at_level(logging.WARNING, logger="caribou"):
        yield caplog


def caribou_records(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "caribou"]


@pytest.mark.parametrize(
    "bad",
    ["not a url {tag}", "ftp://kestrel-{tag}.example.com", "https://kestrel-{tag}.example.com", "http://", "{tag}:8750"],
)
def test_an_endpoint_that_cannot_be_used_warns_once_and_disables(
    caribou_log: pytest.LogCaptureFixture, bad: str
) -> None:
    # A value of this test alone: the SDK warns once per value and process.
    bad = bad.format(tag=uuid.uuid4().hex[:8])
    caribou_log.clear()
    # As a trainer does: set-up, then its run, with the same endpoint.
    caribou.configure(run_id="p", phase="prod", endpoint=bad)
    caribou.configure(run_id="p", phase="prod", endpoint=bad, step=1)

    records = caribou_records(caribou_log)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.WARNING
    text = records[0].getMessage()
    assert f'"{bad}"' in text, f"names the value: {text}"
    assert "expected http://HOST[:PORT][/PATH]" in text, text
    assert "off for this process" in text, text

    assert not caribou.is_enabled()
    assert not caribou.get_kestrel_client().enabled
    assert caribou.get_kestrel_client().get_or_create_project("p") is None
    # Logging is a no-op that never raises; nothing is queued, spooled or dropped.
    with caribou.trace_run({"datapoint_id": "d"}):
        caribou.log(Message(role="user", content="x"))
    report = caribou.flush(timeout=1)
    assert (report.sent, report.spooled, report.dropped, report.pending) == (0, 0, 0, 0), report
    assert caribou.stats()["enqueued"] == 0
    assert len(caribou_records(caribou_log)) == 1, "still one warning"


@pytest.mark.parametrize("configure_first", [True, False], ids=["seed", "no-configure"])
def test_a_bad_KESTREL_URL_warns_once_on_stderr_and_the_agent_runs(project: str, configure_first: bool) -> None:
    """The seed's call as written, with no logging set up: Python prints the one warning."""
    code = f"""
import caribou
from caribou import Message
if {configure_first}:
    caribou.configure(run_id={project!r}, phase="prod")
    caribou.configure(run_id={project!r}, phase="prod")
for i in range(3):
    with caribou.trace_run({{"datapoint_id": f"d{{i}}"}}) as trace_id:
        caribou.log(Message(role="user", content="hello"))
print("enabled", caribou.is_enabled(), caribou.get_kestrel_client().enabled)
print("report", caribou.flush(timeout=2))
"""
    out = run_python(code, "ftp://kestrel.example.com:8750")
    assert "enabled False False" in out.stdout, out.stdout
    assert "report FlushReport(sent=0, spooled=0, dropped=0, pending=0, timed_out=False)" in out.stdout, out.stdout
    assert out.stderr.count("cannot be used") == 1, out.stderr
    assert '"ftp://kestrel.example.com:8750"' in out.stderr and 'the scheme is "ftp"' in out.stderr, out.stderr


def test_batch_files_in_the_spool_folder_itself_are_left_alone_and_warned_once(
    kestrel: Kestrel, project: str, tmp_path: Path, caribou_log: pytest.LogCaptureFixture
) -> None:
    # Batch files lying in the folder itself, as an SDK that used the folder as-is left them.
    stage, root = tmp_path / "stage", tmp_path / "spool"
    trace_id = f"trc_loose_{uuid.uuid4().hex[:12]}"
    run_python(agent(project, trace_id, "loose"), f"http://127.0.0.1:{_free_port()}", env=spool_env(stage))
    root.mkdir()
    for f in batch_files(stage):
        shutil.move(str(f), str(root / f.name))
    loose = batch_files(root)
    assert loose

    caribou.configure(run_id=project, phase="prod", endpoint=kestrel.url, spool_dir=str(root))
    deadline = time.monotonic() + 10
    while not caribou_records(caribou_log) and time.monotonic() < deadline:
        caribou.flush(timeout=0.1)  # passes the SDK's warnings to logging
        time.sleep(0.05)
    records = caribou_records(caribou_log)
    assert len(records) == 1, [r.getMessage() for r in records]
    text = records[0].getMessage()
    assert f"{len(loose)} spooled batch file(s)" in text and str(root) in text, text
    assert "never replayed" in text and f"move them into {root}{os.sep}" in text, text

    time.sleep(REPLAY_WINDOW)
    caribou.configure(run_id=project, phase="prod", endpoint=kestrel.url, spool_dir=str(root))
    caribou.flush(timeout=1)
    assert len(caribou_records(caribou_log)) == 1, "warned once"
    assert not is_stored(kestrel, trace_id), "a batch of unknown endpoint was delivered"
    assert batch_files(root) == loose, "left where they are"
