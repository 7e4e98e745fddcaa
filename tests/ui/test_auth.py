"""The UI with auth on: the page loads without a key, asks for it once (again only when the server
refuses it), keeps it, and every page then works, reloads included."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

import caribou
from caribou import Message
from conftest import Kestrel, Page, dump_on_failure, start_kestrel, stop_kestrel, text_of

KEY = "ui-test-key-3b1f0c"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Kestrel]:
    k = start_kestrel(tmp_path, api_key=KEY)
    try:
        yield k
    finally:
        stop_kestrel(k)


def _enter_key(page: Page, key: str) -> None:
    field = page.wait_for("#keyform #apikey")
    field.send_keys(key)
    page.d.find_element(By.CSS_SELECTOR, "#keyform button[type=submit]").click()


def test_key_is_asked_once_and_kept(
    request: pytest.FixtureRequest, secured: Kestrel, browser_factory: Callable[[], WebDriver]
) -> None:
    caribou.configure(run_id="secure-app", phase="prod", project="secure-app", endpoint=secured.url, api_key=KEY)
    with caribou.trace_run({"datapoint_id": "s-1", "model_name": "gpt-4o"}) as tid:
        caribou.log(Message("user", "hello behind a key"))
    caribou.flush(timeout=10)
    secured.wait("trace", lambda: secured.raw("GET", f"/api/v1/traces/{tid}")[0], lambda s: s == 200)
    # The shell needs no key; the API does.
    assert secured.raw("GET", "/", key="-")[0] == 200
    assert secured.raw("GET", "/api/v1/projects", key="-")[0] == 401

    driver = browser_factory()
    page = Page(driver, secured.url)
    try:
        driver.get(secured.url + "/")
        page.wait_for("#keyform")
        page.shot("14-auth-key-prompt")
        # A wrong key is refused: the dialog comes back and says so.
        _enter_key(page, "wrong-key")
        WebDriverWait(driver, 10).until(lambda d: "refused" in text_of(d.find_element(By.ID, "keyform")))
        _enter_key(page, KEY)
        page.wait_ready()
        page.wait_for('#projects a.card[data-project="secure-app"]')
        assert not page.all(".modal-back")
        assert driver.execute_script("return localStorage.getItem('kestrel.apiKey')") == KEY

        # Every page now works without asking again, reloads included.
        for path in ("/ui/projects/secure-app?tab=prod", f"/ui/traces/{tid}", "/ui/search?q=model:gpt-4o"):
            page.open(path)
            assert not page.all(".modal-back"), f"asked again on {path}"
        page.open(f"/ui/traces/{tid}")
        assert "hello behind a key" in text_of(driver.find_element(By.ID, "conversation"))
        # Forgetting the key asks again.
        driver.find_element(By.ID, "keybtn").click()
        page.wait_for("#keyform")
    finally:
        dump_on_failure(request, driver)
