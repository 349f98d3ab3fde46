"""``make run``'s demo account: made once, in an empty database, in development mode only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit

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
