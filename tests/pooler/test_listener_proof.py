"""The agent-check cache serves only while its listener proves it listens (app/entitlements.py):
pointed at PgBouncer in transaction mode by mistake it never serves, so a revocation is never
read stale; a listening connection that dies stops it at once, and /metrics and the log say
so."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import PG_URL, Api, make_settings, postgres_only, seed_directory
from tests.pgbouncer import PgBouncer

pytestmark = postgres_only

PATIENCE = 10.0


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    assert PG_URL
    with PgBouncer(PG_URL, default_pool_size=2) as running:
        yield running


async def started(settings: Any) -> AsyncIterator[tuple[Any, Api]]:
    app = create_app(settings)
    app.state.access_listener.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield app, await seed_directory(Api(client))
    await app.state.access_listener.stop()
    await app.state.gateway.aclose()
    await app.state.db.dispose()


@pytest.fixture
async def listening_through_pooler(
    database_url: str, bouncer: PgBouncer
) -> AsyncIterator[tuple[Any, Api]]:
    settings = make_settings(
        bouncer.url, database_pooler="transaction", database_listen_url=bouncer.url
    )
    async for pair in started(settings):
        yield pair


@pytest.fixture
async def listening_directly(database_url: str) -> AsyncIterator[tuple[Any, Api]]:
    async for pair in started(make_settings(database_url)):
        yield pair


async def metric(api: Api, name: str) -> float:
    text = (await api.client.get("/metrics")).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def until(condition: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not await condition():
        assert loop.time() < deadline, "never happened"
        await asyncio.sleep(0.01)


async def agent(api: Api) -> bool:
    r = await api.call("GET", "acme", "/agents/bob", user="carol")
    assert r.status_code == 200, r.text
    return bool(r.json()["agent"])


NOT_DIRECT = 'seats_access_cache_stops_total{reason="not_direct"}'


async def test_listener_through_pgbouncer_never_serves_and_a_revocation_is_never_read_stale(
    capfd: pytest.CaptureFixture[str], listening_through_pooler: tuple[Any, Api]
) -> None:
    app, api = listening_through_pooler
    cache = app.state.entitlements
    assert (await api.start_trial()).status_code == 201

    async def refused() -> bool:
        return await metric(api, NOT_DIRECT) >= 1

    await until(refused)
    assert not app.state.access_listener.listening.is_set()
    assert await metric(api, "seats_access_cache_listening") == 0
    # One line says why, and only once however often the listener tries again.
    (line,) = [x for x in capfd.readouterr().err.splitlines() if "access cache not" in x]
    assert "not_direct" in line and "SEATS_DATABASE_LISTEN_URL" in line
    for _ in range(25):
        assert (await api.assign("bob")).status_code == 201
        assert await agent(api)
        assert (await api.unassign("bob")).status_code == 204
        assert not await agent(api)  # at once: never an answer from before the revocation
        assert not cache.serving and len(cache) == 0


async def test_a_terminated_listener_stops_the_cache_at_once_and_listens_again(
    listening_directly: tuple[Any, Api], sql: Any
) -> None:
    app, api = listening_directly
    listener, cache = app.state.access_listener, app.state.entitlements
    await asyncio.wait_for(listener.listening.wait(), PATIENCE)
    assert cache.serving
    assert await metric(api, "seats_access_cache_listening") == 1
    lost = 'seats_access_cache_stops_total{reason="connection_lost"}'
    before = await metric(api, lost)
    (killed,) = await sql("SELECT pg_terminate_backend(:pid)", pid=listener.backend_pid)
    assert killed[0] is True

    async def stopped() -> bool:
        return not cache.serving

    await until(stopped)
    assert await metric(api, lost) == before + 1
    await asyncio.wait_for(listener.listening.wait(), PATIENCE)
    assert cache.serving
    assert await metric(api, "seats_access_cache_listening") == 1
