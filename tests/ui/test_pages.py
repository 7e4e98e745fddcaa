"""End-to-end tests of the web UI in headless Chromium: data loaded through the SDK, every page
opened, what it shows checked against the API, and a screenshot of each page saved under
tests/output/ui/."""

from __future__ import annotations

import json
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from conftest import Demo, Kestrel, Page, scroll_to, text_of


def q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def test_home_lists_projects_with_totals(page: Page, demo: Demo, kestrel: Kestrel) -> None:
    page.open("/")
    card = page.wait_for(f'#projects a.card[data-project="{demo.project}"]')
    stats = kestrel.get("/api/v1/stats", project=demo.project)
    WebDriverWait(page.d, 10).until(lambda d: "traces" in text_of(card))
    assert f"{stats['traces']} traces" in text_of(card)
    page.shot("01-home")
    card.click()
    page.wait_ready()
    assert page.path() == f"/ui/projects/{demo.project}"


def test_project_lists_runs_and_production(page: Page, demo: Demo, kestrel: Kestrel) -> None:
    page.open(f"/ui/projects/{demo.project}")
    runs = page.all("#runs a.run-link")
    assert sorted(text_of(a) for a in runs) == ["baseline", "candidate", "grpo-7b"]
    page.shot("02-project-runs")

    page.d.find_element(By.LINK_TEXT, "Production").click()
    page.wait_ready()
    assert "tab=prod" in page.path()
    page.wait_for("#chart-traffic svg rect")
    page.wait_for("#chart-latency svg circle.pt")
    stats = kestrel.get("/api/v1/stats", project=demo.project, q="phase:prod since:24h")
    figures = text_of(page.d.find_element(By.CSS_SELECTOR, "#tab-prod .figures"))
    assert f"Traces{stats['traces']}" in figures.replace(" ", "")
    assert stats["errors"] == 4  # 3 set by hand + 1 exception
    assert "Errors4" in figures.replace(" ", "")
    rows = page.all("#prod-traces tbody tr")
    assert len(rows) == min(50, stats["traces"])
    page.shot("03-project-production")


def test_reward_curve_to_step_to_rollout(page: Page, demo: Demo, kestrel: Kestrel) -> None:
    page.open(f"/ui/runs/{demo.train_run}")
    steps = kestrel.get(f"/api/v1/runs/{demo.train_run}/steps")["data"]
    points = page.all("#curve-reward circle.pt")
    assert len(points) == demo.steps
    assert page.all("#curve-correct circle.pt"), "a curve per grade name"
    assert page.all("#chart-status svg rect") and page.all("#chart-tokens svg rect") and page.all("#chart-cost svg path")
    # The steps table agrees with the API.
    rows = page.all("#steps tbody tr")
    assert len(rows) == demo.steps
    # Hovering a point shows its values.
    point = page.d.find_element(By.CSS_SELECTOR, '#curve-reward circle[data-step="3"]')
    scroll_to(page.d, point)
    page.d.execute_script("arguments[0].dispatchEvent(new MouseEvent('mouseenter'))", point)
    tip = page.d.find_element(By.CSS_SELECTOR, "#curve-reward .tip")
    mean3 = next(s for s in steps if s["step"] == 3)["grades"]["reward"]["mean"]
    assert "Step 3" in text_of(tip) and f"{mean3:.3f}".rstrip("0").rstrip(".")[:4] in text_of(tip)
    page.shot("04-train-run")

    # Click the step's point: its rollouts, best reward first.
    point.click()
    page.wait_ready()
    assert page.path().startswith(f"/ui/runs/{demo.train_run}/steps/3")
    rows = page.all("#rollouts tbody tr")
    assert len(rows) == demo.per_step
    api_rows = kestrel.get(f"/api/v1/runs/{demo.train_run}/traces", step=3, sort="grade_desc", grade="reward")["data"]
    shown = [a.get_attribute("title") for a in page.all("#rollouts a.trace-link")]
    assert shown == [t["trace_id"] for t in api_rows]
    col = [text_of(th) for th in page.all("#rollouts th")].index("reward")
    values = [float(text_of(r.find_elements(By.CSS_SELECTOR, "td")[col])) for r in rows]
    assert values == sorted(values, reverse=True), values
    page.shot("05-step-rollouts")

    # Click the best rollout: its trace opens.
    page.all("#rollouts a.trace-link")[0].click()
    page.wait_ready()
    assert page.path() == f"/ui/traces/{api_rows[0]['trace_id']}"
    page.wait_for("#conversation .conv-item")
    assert "calc" in text_of(page.d.find_element(By.ID, "conversation"))
    page.shot("06-rollout-trace")

    # Back goes back to the step page (history works).
    page.d.back()
    page.wait_ready()
    assert page.path().startswith(f"/ui/runs/{demo.train_run}/steps/3")


def test_trace_reads_like_the_conversation(page: Page, demo: Demo, kestrel: Kestrel) -> None:
    page.open(f"/ui/traces/{demo.rich_trace}")
    items = page.all("#conversation .conv-item")
    trace = kestrel.get(f"/api/v1/traces/{demo.rich_trace}")
    assert len(items) == len(trace["items"])
    kinds = [i.get_attribute("data-kind") for i in items]
    assert kinds == [it["type"] for it in trace["items"]]
    roles = [text_of(i.find_element(By.CSS_SELECTOR, ".who")) for i in items if i.get_attribute("data-kind") == "message"]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant"]
    conv = text_of(page.d.find_element(By.ID, "conversation"))
    for expected in ("lookup_order", '"customer_id": "cust_123"', '"order_id": "A-1009"', "retrieval", "guardrail", "helpfulness"):
        assert expected in conv, expected
    # Two turns: two separators and two bars on the timeline.
    assert len(page.all("#conversation .turn-sep")) == 2
    assert len(page.all("#timeline .turn-bar")) == 2
    # Long tool results are folded until asked for.
    fold = page.d.find_element(By.CSS_SELECTOR, '#item-7 .fold')
    assert "Line 60" not in text_of(page.d.find_element(By.ID, "item-7"))
    scroll_to(page.d, fold)
    fold.click()
    assert "Line 60" in text_of(page.d.find_element(By.ID, "item-7"))
    # Side panels: tags, metadata, grades, model, tokens and cost.
    assert {text_of(t) for t in page.all("#tags .chip")} == {"premium_tier", "support"}
    meta = text_of(page.d.find_element(By.ID, "metadata"))
    assert "cust_123" in meta and "eu-west" in meta
    assert "helpfulness" in text_of(page.d.find_element(By.ID, "grades"))
    figures = text_of(page.d.find_element(By.CSS_SELECTOR, ".figures"))
    assert "gpt-4o" in figures and f"{trace['input_tokens']:,} in" in figures
    fold.click()
    page.shot("07-trace")

    # A failed trace shows its error and traceback.
    page.open(f"/ui/traces/{demo.error_trace}")
    box = page.wait_for("#trace-error")
    assert "billing service answered 503" in text_of(box)
    assert "Traceback" in text_of(box) and "ValueError" in text_of(box)
    assert "ERROR" in text_of(page.d.find_element(By.CSS_SELECTOR, "h1 .badge"))
    page.shot("08-trace-error")


def test_search_good_and_bad_queries(page: Page, demo: Demo, kestrel: Kestrel) -> None:
    good = f"status:error project:{demo.project}"
    page.open("/ui/search?q=" + q(good))
    expected = kestrel.get("/api/v1/traces", q=good, limit=100)["data"]
    rows = page.all("#search-results tbody tr")
    assert len(rows) == len(expected) > 0
    assert all("ERROR" in text_of(r.find_elements(By.CSS_SELECTOR, "td")[1]) for r in rows)
    header = [text_of(th) for th in page.all("#search-results th")]
    for col in ("Time", "Status", "Model", "Datapoint", "Grades", "Tokens", "Cost", "Duration", "Tags"):
        assert col in header
    assert not page.all("#query-error")
    page.shot("09-search")

    # A wrong query: the error shows, pointing at the bad term; the URL keeps the query.
    box = page.d.find_element(By.ID, "q")
    box.clear()
    box.send_keys("stauts:error tag:premium_tier", Keys.ENTER)
    page.wait_ready()
    err = page.wait_for("#query-error")
    assert "stauts" in text_of(err) and "did you mean" in text_of(err)
    assert text_of(err.find_element(By.TAG_NAME, "mark")) == "stauts"
    assert not page.all("#search-results")
    assert "q=stauts" in page.path()
    page.shot("10-search-bad-query")

    # Clicking a result opens its trace.
    page.open("/ui/search?q=" + q(good))
    link = page.all("#search-results a.trace-link")[0]
    tid = link.get_attribute("title")
    link.click()
    page.wait_ready()
    assert page.path() == f"/ui/traces/{tid}"


def test_add_a_grade_by_hand(page: Page, demo: Demo, kestrel: Kestrel) -> None:
    tid = demo.prod_traces[1]
    page.open(f"/ui/traces/{tid}")
    name = page.d.find_element(By.ID, "grade-name")
    name.clear()
    name.send_keys("human")
    page.d.find_element(By.ID, "grade-value").send_keys("0.75")
    page.d.find_element(By.ID, "grade-comment").send_keys("polite, but slow")
    page.d.find_element(By.ID, "grade-grader").send_keys("ana")
    page.d.find_element(By.ID, "grade-submit").click()
    WebDriverWait(page.d, 10).until(lambda d: "Saved" in text_of(d.find_element(By.ID, "grade-msg")))
    trace = kestrel.wait("grade", lambda: kestrel.get(f"/api/v1/traces/{tid}"),
                         lambda t: any(g["name"] == "human" for g in t["grades"]))
    assert {"name": "human", "value": 0.75} in trace["grades"]
    item = next(i for i in trace["items"] if i["type"] == "grade" and i["name"] == "human")
    assert item["grader"] == "ui:ana" and item["comment"] == "polite, but slow"
    # A label, then the page reloaded shows both.
    name.clear()
    name.send_keys("label")
    page.d.find_element(By.ID, "grade-value").send_keys("needs-review")
    page.d.find_element(By.ID, "grade-submit").click()
    WebDriverWait(page.d, 10).until(lambda d: "label = needs-review" in text_of(d.find_element(By.ID, "grade-msg")))
    page.open(f"/ui/traces/{tid}")
    grades = text_of(page.d.find_element(By.ID, "grade-list"))
    assert "human" in grades and "0.75" in grades and "needs-review" in grades
    # A grade the server refuses shows the server's message.
    page.d.find_element(By.ID, "grade-name").clear()
    page.d.find_element(By.ID, "grade-name").send_keys("n" * 300)
    page.d.find_element(By.ID, "grade-value").send_keys("1")
    page.d.find_element(By.ID, "grade-submit").click()
    WebDriverWait(page.d, 10).until(lambda d: "bad" in (d.find_element(By.ID, "grade-msg").get_attribute("class") or ""))
    assert "256" in text_of(page.d.find_element(By.ID, "grade-msg"))
    page.shot("11-trace-graded")


def test_eval_run_by_datapoint_and_compare(page: Page, demo: Demo, kestrel: Kestrel) -> None:
    page.open(f"/ui/runs/{demo.eval_b}")
    rows = page.all("#datapoints tbody tr")
    assert len(rows) == 10
    traces = kestrel.get(f"/api/v1/runs/{demo.eval_b}/traces", limit=100)["data"]
    by_dp = {t["datapoint_id"]: t["grades"][0]["value"] for t in traces}
    first = rows[0].find_elements(By.CSS_SELECTOR, "td")
    assert float(text_of(first[3])) == by_dp[text_of(first[0])]
    page.shot("12-eval-run")

    from selenium.webdriver.support.ui import Select

    Select(page.d.find_element(By.ID, "compare-with")).select_by_value(demo.eval_a)
    page.d.find_element(By.CSS_SELECTOR, "#compare-form button").click()
    page.wait_ready()
    assert page.path().startswith("/ui/compare?a=" + demo.eval_b)
    rows = page.all("#compare-table tbody tr")
    assert len(rows) == 10
    figures = text_of(page.d.find_element(By.CSS_SELECTOR, ".figures"))
    assert "B better" in figures
    # dp-03 is where the baseline (B here) beats the candidate (A).
    row = next(r for r in rows if text_of(r.find_elements(By.CSS_SELECTOR, "td")[0]) == "dp-03")
    assert text_of(row.find_elements(By.CSS_SELECTOR, "td")[3]).startswith("+")
    page.shot("13-compare")


def test_unknown_pages_and_missing_things_say_so(page: Page, kestrel: Kestrel) -> None:
    page.d.get(kestrel.url + "/ui/traces/trc_nope")
    WebDriverWait(page.d, 10).until(lambda d: d.find_elements(By.ID, "page-error"))
    assert "no trace with id" in text_of(page.d.find_element(By.ID, "page-error"))
    page.d.get(kestrel.url + "/ui/nowhere")
    WebDriverWait(page.d, 10).until(lambda d: "No page at /ui/nowhere" in text_of(d.find_element(By.ID, "main")))


def test_static_files_are_served_with_the_right_headers(kestrel: Kestrel) -> None:
    status, headers, body = kestrel.raw("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in headers["content-security-policy"]
    html = body.decode()
    start = html.index("/ui/static/") + len("/ui/static/")
    version = html[start:html.index("/", start)]
    for path in ("/ui/runs/x/steps/3", "/ui/search?q=status:error", "/ui/"):
        assert kestrel.raw("GET", path)[2] == body
    status, headers, js = kestrel.raw("GET", f"/ui/static/{version}/js/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert "immutable" in headers["cache-control"]
    status, headers, _ = kestrel.raw("GET", "/ui/static/old/app.css")
    assert status == 200 and headers["cache-control"] == "no-cache" and headers["content-type"].startswith("text/css")
    status, _, body = kestrel.raw("GET", f"/ui/static/{version}/../Cargo.toml")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    status, _, body = kestrel.raw("POST", "/ui/search", body={})
    assert status == 405 and json.loads(body)["error"]["code"] == "method_not_allowed"
    # The API keeps its JSON 404 next to the UI.
    status, _, body = kestrel.raw("GET", "/api/v1/nope")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
