"""Fixtures of the web UI's end-to-end tests: a real Kestrel on a free 127.0.0.1 port, data
loaded through the Python SDK, and headless Chromium (Debian's ``chromium`` + ``chromium-driver``)
driven by Selenium.

Needs: ``bash scripts/python-env.sh && bash scripts/ui-test-deps.sh`` (the latter as root for apt).
The Kestrel binary is ``$KESTREL_BIN``, else ``$CARGO_TARGET_DIR/debug/kestrel``, else
``<repo>/target/debug/kestrel`` (built with ``cargo build -p kestrel`` when none exists).
Screenshots go to ``tests/output/ui/`` (gitignored).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import caribou  # noqa: E402
from kestrel_proc import free_port as _free_port  # noqa: E402
from kestrel_proc import kestrel_binary as _kestrel_binary  # noqa: E402
from caribou import Event, Grade, Message, RolloutStatus, ToolExecution

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "tests" / "output" / "ui"

try:  # Selenium is installed by scripts/ui-test-deps.sh; say so instead of an import error.
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - environment problem, reported clearly
    pytest.exit("selenium is missing: run `bash scripts/ui-test-deps.sh`", returncode=2)


# --------------------------------------------------------------------------- Kestrel


class Kestrel:
    """A running Kestrel and a small HTTP client to check what the UI shows against the API."""

    def __init__(self, url: str, proc: "subprocess.Popen[bytes]", api_key: Optional[str]) -> None:
        self.url = url
        self.proc = proc
        self.api_key = api_key

    def raw(self, method: str, path: str, body: Any = None, key: Optional[str] = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        key = key or self.api_key
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get(self, path: str, **params: Any) -> Any:
        if params:
            path += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        status, _, body = self.raw("GET", path)
        assert status == 200, f"GET {path}: {status} {body[:300]!r}"
        return json.loads(body)

    def wait(self, what: str, fetch: Callable[[], Any], ready: Callable[[Any], bool], timeout: float = 20) -> Any:
        """`fetch()` once `ready(result)` holds: the API acks before every derived figure is
        readable; this waits that out, never longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            last = fetch()
            if ready(last):
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not ready after {timeout}s; last: {str(last)[:500]}")
            time.sleep(0.1)


def start_kestrel(tmp: Path, api_key: Optional[str] = None) -> Kestrel:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KESTREL_", "CARIBOU_"))}
    if api_key:
        env["KESTREL_API_KEY"] = api_key
    log = open(tmp / "kestrel.log", "wb")
    proc = subprocess.Popen(
        [str(_kestrel_binary()), "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", str(tmp / "data")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"kestrel exited with {proc.returncode}; see {tmp / 'kestrel.log'}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return Kestrel(url, proc, api_key)
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("kestrel did not answer /healthz within 30s")
        time.sleep(0.05)


def stop_kestrel(k: Kestrel) -> None:
    k.proc.send_signal(signal.SIGTERM)
    try:
        k.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        k.proc.kill()
        k.proc.wait()


@pytest.fixture(scope="session")
def kestrel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kestrel]:
    k = start_kestrel(tmp_path_factory.mktemp("kestrel"))
    try:
        yield k
    finally:
        stop_kestrel(k)


# --------------------------------------------------------------------------- browser


def _chrome(user_data: str) -> WebDriver:
    opts = webdriver.ChromeOptions()
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1440,1000",
        "--force-device-scale-factor=1",
        f"--user-data-dir={user_data}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    opts.binary_location = binary
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="session")
def browser_factory() -> Iterator[Callable[[], WebDriver]]:
    """Starts fresh browsers (each with its own new profile); all are quit at the end."""
    drivers: List[WebDriver] = []
    dirs: List[str] = []

    def make() -> WebDriver:
        d = tempfile.mkdtemp(prefix="kestrel-ui-chrome-")
        dirs.append(d)
        drv = _chrome(d)
        drivers.append(drv)
        return drv

    yield make
    for drv in drivers:
        try:
            drv.quit()
        except Exception:  # a crashed browser must not hide the test result
            traceback.print_exc()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def browser(browser_factory: Callable[[], WebDriver]) -> WebDriver:
    return browser_factory()


class Page:
    """Helpers on a driver: open a UI path and wait until it is drawn, wait for elements, shoot."""

    def __init__(self, driver: WebDriver, base: str) -> None:
        self.d = driver
        self.base = base

    def open(self, path: str) -> None:
        self.d.get(self.base + path)
        self.wait_ready()

    def wait_ready(self, timeout: float = 20) -> None:
        """Until the app says the page is drawn (window.__kestrelPage.ready)."""
        WebDriverWait(self.d, timeout).until(
            lambda d: d.execute_script("return !!(window.__kestrelPage && window.__kestrelPage.ready)")
        )
        errors = self.d.find_elements(By.ID, "page-error")
        assert not errors, f"the page shows an error: {errors[0].text}"

    def wait_for(self, css: str, timeout: float = 20):
        WebDriverWait(self.d, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))
        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def path(self) -> str:
        return self.d.execute_script("return location.pathname + location.search")

    def shot(self, name: str, full: bool = True) -> Path:
        """A screenshot in tests/output/ui/<name>.png: of the whole page, or of the window."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        out = SHOTS / f"{name}.png"
        self.d.execute_script("window.scrollTo(0, 0)")
        if not full:
            self.d.save_screenshot(str(out))
            return out
        height = self.d.execute_script("return Math.min(6000, document.documentElement.scrollHeight)")
        self.d.set_window_size(1440, max(1000, int(height) + 120))
        time.sleep(0.2)  # charts redraw on resize
        self.d.save_screenshot(str(out))
        self.d.set_window_size(1440, 1000)
        return out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


def dump_on_failure(request: pytest.FixtureRequest, driver: WebDriver) -> None:
    """After a failed test: the browser's console and a screenshot, to see what the page showed."""
    if not request.node.stash.get(_FAILED, False):
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = f"FAILED-{request.node.name}"
    try:
        driver.save_screenshot(str(SHOTS / f"{name}.png"))
        logs = driver.get_log("browser")
        print(f"\n--- browser console ({driver.current_url}) ---")
        for entry in logs[-30:]:
            print(entry.get("level"), entry.get("message"))
    except Exception:
        traceback.print_exc()


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: WebDriver, kestrel: Kestrel) -> Iterator[Page]:
    yield Page(browser, kestrel.url)
    dump_on_failure(request, browser)


# --------------------------------------------------------------------------- data through the SDK


@dataclass
class Demo:
    project: str
    train_run: str
    eval_a: str
    eval_b: str
    rich_trace: str
    error_trace: str
    steps: int
    per_step: int
    prod_traces: List[str] = field(default_factory=list)


def _rollout(rng: random.Random, step: int, i: int) -> None:
    """One training rollout: a prompt, an answer with a tool call, a reward that grows with step."""
    caribou.log(Message("system", "You are a careful math tutor."))
    caribou.log(Message("user", f"What is {i} + {step}?"))
    caribou.log(
        Message(
            "assistant",
            None,
            tool_calls=[{"id": f"c{i}", "type": "function", "function": {"name": "calc", "arguments": json.dumps({"expr": f"{i}+{step}"})}}],
            model="qwen-7b",
            input_tokens=120 + 10 * i,
            output_tokens=30 + step,
            cost_usd=0.0004 * (1 + i % 3),
        )
    )
    caribou.log(ToolExecution("calc", call_id=f"c{i}", arguments={"expr": f"{i}+{step}"}, result=str(i + step), duration_ms=3.5))
    caribou.log(Message("assistant", f"The answer is {i + step}.", model="qwen-7b", input_tokens=160, output_tokens=8, cost_usd=0.0002))
    reward = round(min(1.0, max(0.0, 0.15 * step + 0.08 * i + rng.uniform(-0.1, 0.1))), 3)
    caribou.log(Grade("reward", reward, grader="verifier-v1"))
    caribou.log(Grade("correct", reward > 0.5))
    if i == 7:
        caribou.set_status(RolloutStatus.TRUNCATED)


def _rich_trace(project: str) -> str:
    """A multi-turn prod conversation with every kind of item, metadata, tags and long text."""
    long_doc = "\n".join(f"Line {n}: the refund policy allows returns within 30 days of delivery." for n in range(1, 61))
    with caribou.trace_run({"datapoint_id": "session-42", "model_name": "gpt-4o", "customer_id": "cust_123"}) as tid:
        caribou.add_tags("premium_tier", "support")
        caribou.add_meta({"latency_budget_ms": 4000, "region": "eu-west", "experiment": {"arm": "B", "seed": 7}})
        caribou.log(Message("system", "You are Kestrel Air's support agent. Be brief and kind."))
        caribou.log(Message("user", "Hi, I want to return the headphones I bought last week."))
        caribou.log(Event("retrieval", data={"index": "policies", "hits": 3}))
        caribou.log(
            Message(
                "assistant",
                "Let me look up your order.",
                tool_calls=[{"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": json.dumps({"customer_id": "cust_123", "item": "headphones"})}}],
                model="gpt-4o",
                provider="openai",
                input_tokens=412,
                output_tokens=37,
                cost_usd=0.00214,
            )
        )
        caribou.log(
            ToolExecution(
                "lookup_order",
                call_id="call_1",
                arguments={"customer_id": "cust_123", "item": "headphones"},
                result={"order_id": "A-1009", "delivered": "2026-11-18", "price": 129.0, "items": [{"sku": "HP-200", "qty": 1}]},
                requestor="assistant",
                duration_ms=182.4,
            )
        )
        caribou.log(Message("tool", json.dumps({"order_id": "A-1009", "delivered": "2026-11-18"}), tool_call_id="call_1"))
        caribou.log(ToolExecution("fetch_policy", call_id="call_2", arguments={"doc": "refunds"}, result=long_doc, duration_ms=41.0))
        caribou.log(Message("assistant", "Your order A-1009 arrived on Nov 18, so it is within the 30-day window. I can start the return now.", model="gpt-4o", input_tokens=980, output_tokens=41, cost_usd=0.0051))
        caribou.log(Event("guardrail", data={"rule": "pii", "action": "redacted"}, level="warn"))
    with caribou.trace_run({"trace_id": tid}):
        caribou.log(Message("user", "Yes please, start the return."))
        caribou.log(Message("assistant", "Done: return R-77 is open. A prepaid label is on its way to your e-mail.", model="gpt-4o", input_tokens=1100, output_tokens=25, cost_usd=0.0049))
        caribou.log(Grade("helpfulness", 0.9, grader="judge-gpt-4o", comment="resolved in two turns"))
    return tid


def load_demo(k: Kestrel, project: str) -> Demo:
    rng = random.Random(7)
    caribou.configure(run_id=project, phase="prod", project=project, endpoint=k.url, api_key=k.api_key)
    kc = caribou.get_kestrel_client()
    kc.get_or_create_project(project)

    # Training: 6 steps x 8 rollouts, reward rising with the step.
    steps, per_step = 6, 8
    train = kc.create_run(project=project, phase="train", name="grpo-7b", config={"lr": 1e-6, "group_size": per_step})
    caribou.configure(run_id=train.id, phase="train", project=project, endpoint=k.url, api_key=k.api_key)
    kc.add_datapoints(train.id, [{"id": f"q{i}", "input": f"What is {i} + step?", "expected": "a number"} for i in range(per_step)])
    for step in range(steps):
        kc.create_run_step(train.id, step)
        for i in range(per_step):
            try:
                with caribou.trace_run({"datapoint_id": f"q{i}", "step": step, "model_name": "qwen-7b"}):
                    _rollout(rng, step, i)
                    if i == 6 and step % 2 == 1:
                        raise TimeoutError("the sandbox timed out after 30 s")
            except TimeoutError:
                pass
    caribou.flush(timeout=20)

    # Two eval runs over the same 10 datapoints; B is better on most.
    evals = []
    for name, skill in (("baseline", 0.45), ("candidate", 0.7)):
        run = kc.create_run(project=project, phase="eval", name=name, config={"temperature": 0.2})
        caribou.configure(run_id=run.id, phase="eval", project=project, endpoint=k.url, api_key=k.api_key)
        kc.add_datapoints(run.id, [{"id": f"dp-{j:02d}", "input": f"question {j}", "expected": str(j)} for j in range(10)])
        for j in range(10):
            with caribou.trace_run({"datapoint_id": f"dp-{j:02d}", "model_name": "gpt-4o-mini"}):
                caribou.log(Message("user", f"question {j}"))
                caribou.log(Message("assistant", f"answer {j}", model="gpt-4o-mini", input_tokens=50, output_tokens=12, cost_usd=0.0001))
                score = round(min(1.0, skill + (j % 4) * 0.08 - (0.3 if (name == "candidate" and j == 3) else 0)), 3)
                caribou.log(Grade("accuracy", score))
        caribou.flush(timeout=20)
        evals.append(run.id)

    # Production traffic, one rich multi-turn trace and one that failed with a traceback.
    caribou.configure(run_id=project, phase="prod", project=project, endpoint=k.url, api_key=k.api_key)
    rich = _rich_trace(project)
    prod = []
    for n in range(24):
        with caribou.trace_run({"datapoint_id": f"req-{n}", "model_name": "gpt-4o" if n % 3 else "gpt-4o-mini"}) as tid:
            caribou.add_tags("internal" if n % 5 == 0 else "premium_tier")
            caribou.log(Message("user", f"request {n}: where is my parcel?"))
            caribou.log(Message("assistant", "It is on its way.", model="gpt-4o", input_tokens=200 + n, output_tokens=20, cost_usd=0.001 * (1 + n % 4)))
            if n % 7 == 3:
                caribou.set_status(RolloutStatus.ERROR)
                caribou.set_error("upstream model timed out")
        prod.append(tid)
    error_tid = ""
    try:
        with caribou.trace_run({"datapoint_id": "req-boom", "model_name": "gpt-4o"}) as error_tid:
            caribou.log(Message("user", "Cancel my subscription"))
            raise ValueError("billing service answered 503")
    except ValueError:
        pass
    caribou.flush(timeout=20)

    demo = Demo(project, train.id, evals[0], evals[1], rich, error_tid, steps, per_step, prod)
    k.wait("training rollouts", lambda: k.get(f"/api/v1/runs/{train.id}/steps")["data"],
           lambda d: len(d) == steps and all(s["rollouts"] == per_step for s in d))
    k.wait("prod traces", lambda: k.get("/api/v1/stats", project=project, q="phase:prod")["traces"], lambda n: n == 26)
    k.wait("rich trace", lambda: k.get(f"/api/v1/traces/{rich}"), lambda t: t["turn_count"] == 2 and t["status"] != "RUNNING")
    return demo


@pytest.fixture(scope="session")
def demo(kestrel: Kestrel) -> Demo:
    return load_demo(kestrel, "support-agent")


def text_of(el) -> str:
    return (el.get_attribute("textContent") or "").strip()


def scroll_to(driver: WebDriver, el) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
