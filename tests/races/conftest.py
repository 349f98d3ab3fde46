"""The real service, started with ``seats serve --workers 2`` on a throwaway port.

Several worker processes mean no in-process lock can help: whatever holds under these tests
holds because the database enforces it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.db import Database
from app.verify import verify
from tests.conftest import NOW, Api, make_settings
from tests.live import LiveServer
from tests.payments_server import PaymentsServer


@pytest.fixture(scope="module")
def payments() -> Iterator[PaymentsServer]:
    with PaymentsServer() as server:
        yield server


@pytest.fixture(scope="module")
def live_url(migrated_template: str, payments: PaymentsServer) -> Iterator[str]:
    with LiveServer(
        migrated_template, workers=2, SEATS_PAYMENTS_GATEWAY="http", SEATS_PAYMENTS_URL=payments.url
    ) as server:
        yield server.url


@pytest.fixture
async def live(live_url: str, database_url: str, payments: PaymentsServer) -> AsyncIterator[Api]:
    """An ``Api`` over real HTTP to the live server, on a clean database, seeded like ``api``."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=live_url, limits=limits, timeout=30) as client:
        api = Api(client)
        await api.set_clock(NOW)
        assert (await api.put_account("acme")).status_code == 201
        for user_id, role in (("alice", "primary_admin"), ("bob", "admin"), ("carol", "user")):
            assert (await api.put_user("acme", user_id, role)).status_code == 201
        yield api


@pytest.fixture
def live_settings(database_url: str) -> Settings:
    return make_settings(database_url)


async def assert_invariants(settings: Settings) -> None:
    """``seats verify`` must find nothing wrong."""
    db = Database(settings.database_url)
    try:
        violations = await verify(db)
    finally:
        await db.dispose()
    assert not violations, "\n".join(map(str, violations))


def statuses(responses: list[httpx.Response]) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for r in responses:
        key = (r.status_code, r.json().get("code") if r.status_code >= 400 else None)
        counts[key] = counts.get(key, 0) + 1
    return counts
