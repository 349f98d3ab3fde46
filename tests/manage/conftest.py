"""The Manage Seats page in a real browser: Debian's Chromium, driven by Playwright, against the
real server (``seats serve``, one per module) on loopback, on a clean database per test (SQLite
file, or PostgreSQL with TEST_DATABASE_URL).

No browser is downloaded: Playwright drives ``/usr/bin/chromium`` through ``executable_path``.
Without it the tests are skipped on a developer's machine and fail in CI (``CI=true``), where
``.ci/run`` installs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, Response, async_playwright

from tests.conftest import Api, auth, seed_directory, shared_database_url, user_token
from tests.live import LiveServer, on_clean_database

CHROMIUM = os.environ.get("SEATS_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

# Chromium logs every answer >= 400 to the console ("Failed to load resource: the server
# responded with a status of 402 (Payment Required)"): that is the browser's network log of
# a problem the page shows in words, not an error of the page. Every such answer is checked
# separately (problem+json, never 5xx); anything else on the console fails the test.
NETWORK_LOG = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d")


# axe-core, the accessibility checker, pinned in tests/manage/axe/package.json and installed
# from the npm registry once per checkout and manifest (as tests/clients installs its tools).
AXE = Path(__file__).parent / "axe"
AXE_CACHE = Path(__file__).resolve().parents[2] / "var" / "npm-tools"
# Where every state's screenshots go (``<state>-<width>.png``): a folder to look at after one
# run; a temporary folder when unset.
SHOTS_ENV = "SEATS_PAGE_SHOTS"


def chromium_path() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = f"Chromium not found at {CHROMIUM} (Debian package 'chromium')"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + ": CI must run the browser tests", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path, headless=True)
        yield chromium
        await chromium.close()


@pytest.fixture(scope="module")
def module_server(
    migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One ``seats serve`` on a free loopback port for the module's tests."""
    url = shared_database_url(migrated_template, tmp_path_factory)
    with LiveServer(url, workers=1, SEATS_LOG_LEVEL="ERROR") as live:
        yield live


@pytest.fixture
def server(module_server: LiveServer, database_url: str, migrated_template: str) -> LiveServer:
    """``seats serve`` on a free loopback port, on a clean database for this test."""
    return on_clean_database(module_server, migrated_template)


@pytest.fixture
async def api(server: LiveServer) -> AsyncIterator[Api]:
    """The ``Api`` helpers over real HTTP to the server, with the usual directory: clock at
    2026-11-21 12:00 UTC; acme (monthly, anchor 1 Nov): alice primary admin, bob admin,
    carol user; globex: gina."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield await seed_directory(Api(client))


@dataclass
class Watch:
    """What the page did that a person would not see: console errors, requests elsewhere."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    bad_answers: list[str] = field(default_factory=list)
    allowed_console: list[re.Pattern[str]] = field(default_factory=lambda: [NETWORK_LOG])

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not any(
            p.search(message.text) for p in self.allowed_console
        ):
            self.console_errors.append(message.text)

    def on_request(self, request: Request) -> None:
        url = request.url
        if not (url == self.origin or url.startswith(self.origin + "/") or url.startswith("data:")):
            self.foreign_requests.append(url)

    async def on_response(self, response: Response) -> None:
        if response.status >= 500:
            self.bad_answers.append(f"{response.status} {response.url}")
        elif response.status >= 400:
            kind = await response.header_value("content-type") or ""
            if not kind.startswith("application/problem+json"):
                self.bad_answers.append(f"{response.status} {response.url} ({kind})")

    def check(self) -> None:
        assert self.page_errors == [], self.page_errors
        assert self.console_errors == [], self.console_errors
        assert self.foreign_requests == [], self.foreign_requests
        assert self.bad_answers == [], self.bad_answers


@dataclass
class Manage:
    """The page in a browser tab, with what the test needs around it."""

    page: Page
    server: LiveServer
    watch: Watch
    shots: Path
    taken: list[Path] = field(default_factory=list)

    async def open(self, user: str = "alice", account: str = "acme") -> None:
        """Open ``/manage`` signed in as ``user``, as the link ``make run`` prints."""
        await self.page.goto(f"{self.server.url}/manage#token={user_token(account, user)}")

    async def shot(self, name: str) -> Path:
        """A full-page screenshot of the current state, into the test's temporary folder."""
        path = self.shots / f"{len(self.taken):02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        self.taken.append(path)
        return path

    async def fits(self, width: int) -> None:
        """At ``width`` CSS pixels the page needs no sideways scrolling."""
        await self.page.set_viewport_size({"width": width, "height": 900})
        scroll_width = await self.page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{scroll_width}px wide at a {width}px viewport"


@pytest.fixture
async def manage(browser: Browser, server: LiveServer, tmp_path: Path) -> AsyncIterator[Manage]:
    context = await browser.new_context(
        viewport={"width": 1024, "height": 900}, locale="en-US", timezone_id="UTC"
    )
    page = await context.new_page()
    page.set_default_timeout(10_000)
    watch = Watch(origin=server.url)
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
    page.on("request", watch.on_request)
    page.on("response", watch.on_response)
    m = Manage(page=page, server=server, watch=watch, shots=tmp_path)
    try:
        yield m
    finally:
        await context.close()
    watch.check()


async def billing_run(api: Api) -> dict[str, Any]:
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    return report


def as_user(account: str, user: str) -> dict[str, str]:
    return auth(user_token(account, user))


@dataclass(frozen=True)
class Axe:
    """axe-core's script, or why it could not be installed (then each check says so)."""

    source: str | None
    missing: str = ""


@pytest.fixture(scope="session")
def axe(tmp_path_factory: pytest.TempPathFactory) -> Axe:
    """axe-core's ``axe.min.js``; without node or npm, absent with the reason (CI fails)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        reason = "node and npm are not installed (.ci/run installs them): axe-core not run"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        return Axe(None, reason)
    manifest = (AXE / "package.json").read_bytes()
    folder = AXE_CACHE / hashlib.sha256(manifest).hexdigest()[:16]
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        staging = tmp_path_factory.mktemp("npm-axe")
        (staging / "package.json").write_bytes(manifest)
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        AXE_CACHE.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: a half-copied folder would pass the check above next time.
        ready = Path(tempfile.mkdtemp(dir=AXE_CACHE))
        shutil.copytree(staging, ready, symlinks=True, dirs_exist_ok=True)
        with contextlib.suppress(OSError):  # another run got there first: use its folder
            ready.rename(folder)
        shutil.rmtree(ready, ignore_errors=True)
    return Axe(script.read_text())


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the states' screenshots: ``$SEATS_PAGE_SHOTS``, or a temporary one."""
    given = os.environ.get(SHOTS_ENV)
    if not given:
        return tmp_path_factory.mktemp("page-states")
    folder = Path(given)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
