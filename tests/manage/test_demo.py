"""``make run``'s demo account: made once, in an empty database, in development mode only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import httpx
import jwt
import pytest
from sqlalchemy import text

from app.clock import SystemClock
from app.config import Settings
from app.db import Database
from app.manage.demo import DEMO_ACCOUNT, NotDevMode, page_url, seed_demo
from tests.conftest import SECRET, make_settings


@pytest.fixture
def dev_settings(database_url: str) -> Settings:
    return make_settings(database_url, dev=True, test_clock=False)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def rows(db: Database, query: str) -> list[tuple[object, ...]]:
    async with db.transaction() as session:
        return [tuple(r) for r in (await session.execute(text(query))).all()]


async def test_demo_in_an_empty_database(db: Database, dev_settings: Settings) -> None:
    assert await seed_demo(db, SystemClock(), dev_settings) is True
    assert await rows(db, "SELECT id, billing_cycle FROM account") == [(DEMO_ACCOUNT, "monthly")]
    users = await rows(db, "SELECT role, count(*) FROM account_user GROUP BY role ORDER BY role")
    assert users == [("admin", 1), ("primary_admin", 1), ("user", 3)]
    assert await rows(db, "SELECT status, seats FROM plan") == [("none", 0)]
    # Run again (every `make run`): nothing is added or changed.
    assert await seed_demo(db, SystemClock(), dev_settings) is False
    assert await rows(db, "SELECT count(*) FROM account_user") == [(5,)]


async def test_no_demo_in_a_database_with_accounts(db: Database, dev_settings: Settings) -> None:
    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO account (id, name, billing_cycle, billing_anchor, payment_method, "
                "currency, created_at, updated_at) VALUES ('real', 'Real', 'monthly', "
                "'2026-11-01', 'pm_card_visa', 'USD', '2026-11-01 00:00:00', "
                "'2026-11-01 00:00:00')"
            )
        )
    assert await seed_demo(db, SystemClock(), dev_settings) is False
    assert await rows(db, "SELECT id FROM account") == [("real",)]


async def test_no_demo_outside_dev_mode(db: Database, database_url: str) -> None:
    with pytest.raises(NotDevMode):
        await seed_demo(db, SystemClock(), make_settings(database_url))
    assert await rows(db, "SELECT count(*) FROM account") == [(0,)]


def test_page_url_signs_in_the_demo_primary_admin(dev_settings: Settings) -> None:
    url = page_url(dev_settings, "http://127.0.0.1:8000/", timedelta(hours=12))
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.query) == (
        "http",
        "127.0.0.1:8000",
        "/manage",
        "",  # the token is in the fragment only: never sent to the server in a URL
    )
    name, token = parts.fragment.split("=", 1)
    assert name == "token"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["account_id"]) == ("ada", DEMO_ACCOUNT)
    assert claims["exp"] - claims["iat"] == 12 * 3600


def seats(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The ``seats`` command in ``cwd`` with ``env`` and none of this shell's settings."""
    own = {k: v for k, v in os.environ.items() if not k.startswith("SEATS_") and k != "PORT"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env={**own, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def printed_url(out: str) -> SplitResult:
    (line,) = [line.strip() for line in out.splitlines() if "/manage#token=" in line]
    return urlsplit(line)


def test_demo_outside_make_run_uses_make_runs_secret(tmp_path: Path) -> None:
    """In another terminal than `make run`'s, with no SEATS_* set: the same secret and dev
    mode as the server `make run` started (var/dev-jwt-secret)."""
    secret = "s" * 48
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "dev-jwt-secret").write_text(secret + "\n")
    env = {"SEATS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'seats.db'}"}
    done = seats(["demo"], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    url = printed_url(done.stdout)
    claims = jwt.decode(url.fragment.removeprefix("token="), secret, algorithms=["HS256"])
    assert (claims["sub"], claims["account_id"]) == ("ada", DEMO_ACCOUNT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_port_setting_falls_back_to_the_platforms_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEATS_PORT", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    assert make_settings("sqlite+aiosqlite://").port == 8000
    monkeypatch.setenv("PORT", "9001")
    assert make_settings("sqlite+aiosqlite://").port == 9001
    monkeypatch.setenv("SEATS_PORT", "8123")
    assert make_settings("sqlite+aiosqlite://").port == 8123


def test_demo_prints_the_url_seats_serve_listens_on(tmp_path: Path) -> None:
    """`seats serve` and `seats demo` read the port from the same setting (SEATS_PORT): the
    printed page answers."""
    port = free_port()
    env = {
        "SEATS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'seats.db'}",
        "SEATS_JWT_SECRET": SECRET,
        "SEATS_DEV": "1",
        "SEATS_LOG_LEVEL": "WARNING",
        "SEATS_PORT": str(port),
    }
    done = seats(["demo"], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    url = printed_url(done.stdout)
    assert url.netloc == f"127.0.0.1:{port}"
    own = {k: v for k, v in os.environ.items() if not k.startswith("SEATS_") and k != "PORT"}
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=tmp_path,
        env={**own, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                page = httpx.get(f"{url.scheme}://{url.netloc}{url.path}", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, "seats serve exited"
                time.sleep(0.1)
        else:
            pytest.fail("seats serve never answered on the printed port")
        assert page.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
