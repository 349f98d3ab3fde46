"""/docs in a real browser (SPEC §4 Operations): Swagger UI renders the document offline.

The real server (``seats serve``) on loopback, Debian's Chromium driven by Playwright; every
request the page makes to any other host is refused and recorded, so the page must work
with no internet at all.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.live import LiveServer

pytestmark = pytest.mark.server

CHROMIUM = os.environ.get("SEATS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _chromium() -> str:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must render /docs in a real browser, and {CHROMIUM} is missing")
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian package `chromium`); CI installs it")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    db = tmp_path_factory.mktemp("docs") / "seats.db"
    with LiveServer(f"sqlite+aiosqlite:///{db}", workers=1) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


def _offline_page(browser: Browser, server: LiveServer, outside: list[str]) -> Page:
    """A page that may reach the server only: anything else is recorded and aborted."""
    page = browser.new_page(viewport={"width": 1280, "height": 2000})
    own = urlsplit(server.url).netloc

    def gate(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", gate)
    return page


def test_docs_draw_every_operation_and_try_it_out_works(
    server: LiveServer, browser: Browser, tmp_path: Path
) -> None:
    outside: list[str] = []
    errors: list[str] = []
    page = _offline_page(browser, server, outside)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Conversations seats")
    expect(page.get_by_text("How to authenticate")).to_be_visible()
    # Swagger UI 4 answered the 3.1 document with "Unable to render this definition".
    assert page.get_by_text("Unable to render this definition").count() == 0
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    drawn = {operations.nth(i).get_attribute("id") or "" for i in range(operations.count())}
    for operation_id in ("purchaseSeats", "checkAgent", "upsertAccount", "runBilling", "healthz"):
        assert any(d.endswith(f"-{operation_id}") for d in drawn), (operation_id, drawn)

    healthz = page.locator("[id$='-healthz']")
    healthz.locator(".opblock-summary").click()
    healthz.get_by_role("button", name="Try it out").click()
    healthz.get_by_role("button", name="Execute").click()
    status = healthz.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200", timeout=15_000)
    expect(healthz.locator(".live-responses-table .microlight").first).to_contain_text('"ok"')

    page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
    if shot := os.environ.get("SEATS_DOCS_SCREENSHOT"):
        shutil.copyfile(tmp_path / "docs.png", shot)
    assert (tmp_path / "docs.png").stat().st_size > 10_000
    assert outside == [], "the docs page tried to reach the internet"
    assert errors == []
    page.close()


def test_no_redoc_page(server: LiveServer) -> None:
    """ReDoc's bundle loads its logo from the internet: the service serves Swagger UI only."""
    assert httpx.get(f"{server.url}/redoc").status_code == 404


def test_docs_show_each_problems_own_example(server: LiveServer, browser: Browser) -> None:
    """A 401's example is `unauthenticated`'s, not another problem's."""
    outside: list[str] = []
    page = _offline_page(browser, server, outside)
    page.goto(f"{server.url}/docs")
    operation = page.locator("[id$='-getPlan']")
    operation.locator(".opblock-summary").click()
    unauthenticated = operation.locator("tr.response[data-code='401']")
    expect(unauthenticated).to_contain_text("problems/unauthenticated")
    expect(unauthenticated).not_to_contain_text("seats_assigned")
    forbidden = operation.locator("tr.response[data-code='403']")
    expect(forbidden).to_contain_text('"code": "unknown_user"')
    assert outside == []
    page.close()
