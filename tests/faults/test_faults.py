"""Fault scenarios: Kestrel killed, down, hung; the agent killed; fork; 1,000 concurrent asyncio
traces. Each logs labelled records with the real SDK against a real Kestrel on 127.0.0.1, reads
Kestrel back, prints ``scenario=... logged= acked= stored= duplicated= lost=`` and fails on any
loss or duplicate (see faultkit.py for how records are counted).
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

import caribou
from caribou import Message
from faultkit import Expected, Kestrel, account, agent_env, report, reports_of, run_agent, wait_spool_empty

ITEMS = 5


def configure_sdk(kestrel: Kestrel, spool_dir: Path, request_timeout: float = 2.0) -> None:
    """The in-process SDK pointed at this test's Kestrel (started or not) and spool folder."""
    caribou.configure(
        run_id="faults",
        phase="prod",
        endpoint=kestrel.url,
        connect_timeout=0.5,
        request_timeout=request_timeout,
        flush_interval=0.05,
        spool_dir=str(spool_dir),
    )


@pytest.fixture
def sdk(kestrel: Kestrel, spool_dir: Path) -> Iterator[Path]:
    configure_sdk(kestrel, spool_dir)
    yield spool_dir
    caribou.shutdown(timeout=5)


def log_trace(trace_id: str, items: int = ITEMS) -> None:
    with caribou.trace_run({"trace_id": trace_id, "datapoint_id": trace_id}):
        for k in range(items):
            caribou.log(Message(role="user", content=f"{trace_id}:{k}"))


def acked() -> int:
    s = caribou.stats()
    return int(s["sent"] + s["spool_sent"])


def test_server_sigkill_mid_ingest_20_rounds(kestrel: Kestrel, sdk: Path) -> None:
    """Kestrel is SIGKILLed 20 times while an agent logs without pause; nothing acknowledged is
    lost, and the SDK's retries and spool complete the rest with no duplicate."""
    rounds = 20
    expected = Expected()
    stop = threading.Event()

    def producer() -> None:
        i = 0
        while not stop.is_set():
            trace_id = f"trc_kill_{i}"
            log_trace(trace_id, 40)
            expected.add(trace_id, 40)
            i += 1
            time.sleep(0.004)

    kestrel.start()
    thread = threading.Thread(target=producer)
    thread.start()
    rng = random.Random(7)
    try:
        for _ in range(rounds):
            time.sleep(rng.uniform(0.15, 0.4))  # ingest under load
            kestrel.kill()
            time.sleep(rng.uniform(0.0, 0.3))  # down for a moment
            kestrel.start()
    finally:
        stop.set()
        thread.join()
    flushed = caribou.flush(timeout=30)
    assert flushed.pending == 0 and flushed.dropped == 0, flushed
    wait_spool_empty(sdk, 90)
    counts = account(kestrel, expected)
    report(
        "server_sigkill", expected, counts, acked(), rounds=rounds, traces=len(expected.traces), spooled=flushed.spooled
    )


def test_kestrel_down_then_back(kestrel: Kestrel, sdk: Path, spool_dir: Path) -> None:
    """Kestrel is down while agents log: the same process delivers when it is back, and records of
    a process that exited meanwhile are delivered by the next process using the same spool."""
    expected = Expected()
    # 1. This process logs while nothing listens: flush says "spooled", quickly.
    for i in range(40):
        log_trace(f"trc_down_{i}")
        expected.add(f"trc_down_{i}", ITEMS)
    started = time.monotonic()
    r = caribou.flush(timeout=10)
    assert time.monotonic() - started < 5
    assert (r.sent, r.pending, r.dropped, r.spooled) == (0, 0, 0, expected.records), r
    # 2. Another process logs and exits while Kestrel is still down.
    env = agent_env(kestrel.url, spool_dir)
    out = reports_of(run_agent(["log", "--prefix", "trc_exited_", "--traces", "30", "--items", str(ITEMS)], env).stdout)
    for i in range(30):
        expected.add(f"trc_exited_{i}", ITEMS)
    assert out[0]["report"]["spooled"] == 30 * (ITEMS + 2), out
    time.sleep(1.0)  # down for a while
    # 3. Kestrel is back: this process replays everything in the spool (its own and the exited
    #    process's), within its replay backoff.
    kestrel.start()
    wait_spool_empty(spool_dir, 60)
    counts = account(kestrel, expected)
    report("kestrel_down_then_back", expected, counts, acked(), spooled=expected.records)
    assert acked() == expected.records


def test_next_process_delivers_the_spool(kestrel: Kestrel, spool_dir: Path) -> None:
    """Kestrel down; the agent logs, flushes (spooled) and exits; Kestrel comes back; a new
    process with the same spool folder delivers everything."""
    env = agent_env(kestrel.url, spool_dir)
    out = reports_of(run_agent(["log", "--prefix", "trc_next_", "--traces", "50", "--items", str(ITEMS)], env).stdout)
    expected = Expected()
    for i in range(50):
        expected.add(f"trc_next_{i}", ITEMS)
    assert out[0]["report"]["spooled"] == expected.records, out
    kestrel.start()
    later = reports_of(run_agent(["deliver"], env).stdout)
    counts = account(kestrel, expected)
    report("next_process_delivers", expected, counts, later[0]["stats"]["spool_sent"])
    assert later[0]["stats"]["spool_sent"] == expected.records


def test_kestrel_hung_never_hangs_the_agent(kestrel: Kestrel, sdk: Path, spool_dir: Path) -> None:
    """Kestrel accepts connections and never answers (SIGSTOP): flush and shutdown keep to their
    timeouts, spool what is held, and everything is delivered once Kestrel resumes."""
    kestrel.start()
    kestrel.signal(signal.SIGSTOP)
    expected = Expected()
    for i in range(30):
        log_trace(f"trc_hung_{i}")
        expected.add(f"trc_hung_{i}", ITEMS)
    started = time.monotonic()
    r = caribou.flush(timeout=1.5)
    took = time.monotonic() - started
    assert took < 2.0, took
    assert r.pending == 0 and r.sent + r.spooled == expected.records, r
    for i in range(30, 40):
        log_trace(f"trc_hung_{i}")
        expected.add(f"trc_hung_{i}", ITEMS)
    started = time.monotonic()
    r = caribou.shutdown(timeout=1.0)
    took = time.monotonic() - started
    assert took < 1.5, took
    assert r.pending == 0 and r.dropped == 0 and r.sent + r.spooled == expected.records, r
    # Kestrel resumes (and may now commit requests the SDK gave up on: stored once all the same).
    kestrel.signal(signal.SIGCONT)
    env = agent_env(kestrel.url, spool_dir)
    later = reports_of(run_agent(["deliver"], env).stdout)
    wait_spool_empty(spool_dir, 30)
    counts = account(kestrel, expected)
    report("kestrel_hung", expected, counts, r.sent + later[0]["stats"]["spool_sent"], shutdown_s=f"{took:.2f}")


@pytest.mark.parametrize("kestrel_up", [True, False], ids=["kestrel_up", "kestrel_down"])
def test_agent_sigkilled_right_after_flush(kestrel: Kestrel, spool_dir: Path, kestrel_up: bool) -> None:
    """The agent process is SIGKILLed the moment flush() returns: what flush reported as sent is
    in Kestrel, what it reported as spooled is delivered by the next process."""
    if kestrel_up:
        kestrel.start()
    env = agent_env(kestrel.url, spool_dir)
    proc = run_agent(
        ["log", "--prefix", "trc_sigkill_", "--traces", "60", "--items", str(ITEMS), "--sigkill-after-flush"],
        env,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    r = reports_of(proc.stdout)[0]["report"]
    expected = Expected()
    for i in range(60):
        expected.add(f"trc_sigkill_{i}", ITEMS)
    assert r["pending"] == 0 and r["dropped"] == 0 and r["sent"] + r["spooled"] == expected.records, r
    acked_n = r["sent"]
    if not kestrel_up:
        kestrel.start()
        later = reports_of(run_agent(["deliver"], env).stdout)
        acked_n += later[0]["stats"]["spool_sent"]
    counts = account(kestrel, expected)
    name = "agent_sigkill_after_flush" + ("" if kestrel_up else "_kestrel_down")
    report(name, expected, counts, acked_n, sent=r["sent"], spooled=r["spooled"])


def test_fork_prefork_and_multiprocessing(kestrel: Kestrel, spool_dir: Path) -> None:
    """A gunicorn-style master forks workers after configure() while one of its threads logs; and
    multiprocessing with the fork start method. Kestrel is killed and restarted halfway through the
    second run. Every process's records arrive once."""
    kestrel.start()
    env = agent_env(kestrel.url, spool_dir)
    expected = Expected()
    out = reports_of(
        run_agent(["prefork", "--prefix", "trc_pf_", "--workers", "4", "--traces", "40", "--items", str(ITEMS)], env).stdout
    )
    master = [o for o in out if o["role"] == "master"][0]
    workers = [o for o in out if o["role"] == "worker"]
    assert len(workers) == 4 and all(s == 0 for s in master["worker_status"]), out
    for w in range(4):
        for i in range(40):
            expected.add(f"trc_pf_w{w}-{i}", ITEMS)
    for i in range(master["master_traces"]):
        expected.add(f"trc_pf_m{i}", ITEMS)
    acked_n = sum(o["report"]["sent"] for o in out)

    def chaos() -> None:
        time.sleep(0.3)
        kestrel.kill()
        time.sleep(0.5)
        kestrel.start()

    t = threading.Thread(target=chaos)
    t.start()
    out = reports_of(
        run_agent(["mp", "--prefix", "trc_mp_", "--workers", "4", "--traces", "60", "--items", str(ITEMS)], env).stdout
    )
    t.join()
    mp = out[0]
    assert mp["exitcodes"] == [0, 0, 0, 0], mp
    expected.add("trc_mp_parent0", ITEMS)
    for w in range(4):
        for i in range(60):
            expected.add(f"trc_mp_p{w}-{i}", ITEMS)
    for r in mp["workers"] + [mp["report"]]:
        assert r["pending"] == 0 and r["dropped"] == 0, mp
    # Spooled batches (the kill) are delivered by a later process.
    later = reports_of(run_agent(["deliver"], env).stdout)
    wait_spool_empty(spool_dir, 30)
    acked_n += sum(r["sent"] for r in mp["workers"]) + mp["report"]["sent"] + later[0]["stats"]["spool_sent"]
    counts = account(kestrel, expected)
    report("fork", expected, counts, acked_n, processes=10)


def test_thread_pool(kestrel: Kestrel, sdk: Path) -> None:
    """16 threads log 400 traces at once; each trace holds exactly its own items."""
    kestrel.start()
    expected = Expected()
    ids = [f"trc_pool_{i}" for i in range(400)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(log_trace, ids))
    for i in ids:
        expected.add(i, ITEMS)
    r = caribou.flush(timeout=30)
    assert (r.pending, r.dropped, r.spooled) == (0, 0, 0), r
    counts = account(kestrel, expected)
    report("thread_pool", expected, counts, acked(), threads=16)


def test_1000_concurrent_asyncio_traces(kestrel: Kestrel, sdk: Path) -> None:
    """1,000 asyncio tasks, each in its own trace_run, interleaved at every await; Kestrel is
    restarted while they run. No item lands in another task's trace, none is lost."""
    kestrel.start()
    expected = Expected()

    async def one(i: int) -> None:
        trace_id = f"trc_async_{i}"
        async with caribou.trace_run({"trace_id": trace_id, "datapoint_id": trace_id}):
            for k in range(ITEMS):
                caribou.log(Message(role="assistant", content=f"{trace_id}:{k}"))
                await asyncio.sleep(random.random() * 0.05)

    async def main() -> None:
        tasks = [asyncio.create_task(one(i)) for i in range(1000)]
        await asyncio.sleep(0.03)
        kestrel.kill()
        await asyncio.sleep(0.2)
        kestrel.start()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    for i in range(1000):
        expected.add(f"trc_async_{i}", ITEMS)
    r = caribou.flush(timeout=30)
    assert r.pending == 0 and r.dropped == 0, r
    wait_spool_empty(sdk, 60)
    counts = account(kestrel, expected)
    report("asyncio_1000", expected, counts, acked(), tasks=1000)


def test_overloaded_kestrel_answers_503_and_the_agent_spools(kestrel: Kestrel, spool_dir: Path) -> None:
    """Kestrel's memory for request bodies is held by an upload that stalled (a slow client), so
    the agent's batches wait for room, get a 503 `overloaded` with Retry-After, and go to the
    spool; once the memory frees up the spool is delivered: nothing lost, nothing twice."""
    kestrel.args = ["--max-ingest-memory", "4MiB", "--body-timeout", "120s"]
    kestrel.start()
    # The small-body lane is a quarter of the budget: 1 MiB. This upload announces 1 MiB, sends
    # all but a little of it and stalls, holding what it sent.
    stalled = socket.create_connection(("127.0.0.1", kestrel.port))
    stalled.sendall(
        b"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1048576\r\n\r\n" + b" " * 1_040_000
    )
    time.sleep(1.0)  # for Kestrel to read what was sent
    # A request timeout longer than Kestrel's wait for room, so that its 503 can reach the agent.
    configure_sdk(kestrel, spool_dir, request_timeout=10.0)
    try:
        expected = Expected()
        for i in range(40):
            log_trace(f"trc_busy_{i}")
            expected.add(f"trc_busy_{i}", ITEMS)
        r = caribou.flush(timeout=40)
        assert (r.dropped, r.pending) == (0, 0), r
        assert r.spooled > 0 and r.sent + r.spooled == expected.records, r
        # The requests the agent gave up waiting for got their 503 meanwhile.
        deadline = time.monotonic() + 15
        while "budget full" not in kestrel.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, "Kestrel answered no 503 overloaded"
            time.sleep(0.1)
        stalled.close()
        wait_spool_empty(spool_dir, 60)
        counts = account(kestrel, expected)
        report("overloaded_503_then_spool", expected, counts, acked(), spooled=r.spooled)
        assert acked() == expected.records
    finally:
        stalled.close()
        caribou.shutdown(timeout=5)
