"""Links and paths the UI must survive: metadata keys that the search language only reads in quotes
(spaces, `:<>`, quotes) give search links that find their trace, and a path with a malformed `%`
escape shows the not-found page instead of hanging on "Loading…"."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import caribou
from conftest import Kestrel, Page, text_of

# Keys a bare `meta.<key>` cannot hold, each with a value that needs quotes too, and plain ones.
ODD_META = {
    "customer id": "cust 7",
    "a:b<c>": 3,
    'say "hi" \\o/': 'yes "really"',
    "plain_key": "(x)",
}


@pytest.fixture(scope="module")
def odd_trace(kestrel: Kestrel) -> str:
    caribou.configure(run_id="odd-keys", phase="prod", project="odd-keys", endpoint=kestrel.url, api_key=kestrel.api_key)
    with caribou.trace_run({"datapoint_id": "odd"}) as tid:
        caribou.add_meta(ODD_META)
        caribou.log(caribou.Message("user", "a trace with odd metadata keys"))
    report = caribou.flush(timeout=20)
    assert report.dropped == 0
    kestrel.wait("odd trace", lambda: kestrel.get(f"/api/v1/traces/{tid}")["metadata"], lambda m: all(k in m for k in ODD_META))
    return tid


def test_metadata_links_with_odd_keys_find_their_trace(page: Page, odd_trace: str, kestrel: Kestrel) -> None:
    for key in ODD_META:
        page.open(f"/ui/traces/{odd_trace}")
        dts = [dt for dt in page.all("#metadata dt") if text_of(dt) == key]
        assert dts, f"no metadata row for {key!r}"
        link = dts[0].find_element(By.XPATH, "following-sibling::dd[1]//a")
        link.click()
        page.wait_ready()
        assert page.path().startswith("/ui/search?"), page.path()
        errors = page.all("#query-error")
        assert not errors, f"{key!r}: {text_of(errors[0])}"
        found = [a.get_attribute("title") for a in page.all("#search-results a.trace-link")]
        assert found == [odd_trace], f"{key!r}: {found}"
        # What the link searched for is exactly what the API answers for it.
        q = page.d.find_element(By.ID, "q").get_attribute("value")
        assert [t["trace_id"] for t in kestrel.get("/api/v1/traces", q=q)["data"]] == [odd_trace], q
    # Keys are quoted only when they must be.
    page.open(f"/ui/traces/{odd_trace}")
    hrefs = [a.get_attribute("href") for a in page.all("#metadata dd a")]
    assert any("meta.plain_key%3A%22%28x%29%22" in h for h in hrefs), hrefs
    assert any("meta.%22customer+id%22%3A%22cust+7%22" in h for h in hrefs), hrefs


@pytest.mark.parametrize("path", ["/ui/traces/%E0%A4%A", "/ui/runs/%zz", "/ui/projects/%", "/ui/runs/r%C3/steps/3"])
def test_a_malformed_escape_in_the_path_shows_not_found(page: Page, kestrel: Kestrel, path: str) -> None:
    page.d.get(kestrel.url + path)
    WebDriverWait(page.d, 10).until(lambda d: "No page at" in text_of(d.find_element(By.ID, "main")))
    main = text_of(page.d.find_element(By.ID, "main"))
    assert "Loading" not in main and path in main, main
    page.wait_ready()
