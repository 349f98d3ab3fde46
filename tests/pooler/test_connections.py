"""The connection budget and the typed database settings (app/db.py, app/config.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.config import Settings
from app.db import Database
from tests.conftest import PG_URL, SECRET, Api, postgres_only
from tests.pgbouncer import PgBouncer


@postgres_only
@pytest.mark.settings(database_pool_size=3)
async def test_pool_size_a_process_opens_at_most_pool_size_connections_overflow_included(
    api: Api, sql: Any
) -> None:
    assert (await api.start_trial()).status_code == 201
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            (row,) = await sql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seats'"
            )
            peak = max(peak, row[0])
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        answers = await asyncio.gather(
            *(api.call("GET", "acme", user="alice") for _ in range(30)),
            *(api.call("GET", "acme", "/agents/bob", user="carol") for _ in range(30)),
            *(
                api.call("POST", "acme", "/quotes", user="alice", json={"seats": 25})
                for _ in range(10)
            ),
        )
    finally:
        watcher.cancel()
    assert {r.status_code for r in answers} == {200, 201}
    (row,) = await sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seats'")
    peak = max(peak, row[0])
    # The burst kept the pool busy (more than one connection at once), and never past its size.
    assert 2 <= peak <= 3, peak


@pytest.mark.parametrize(
    "query",
    [
        "statement_cache_size=0",
        "prepared_statement_cache_size=0",
        "ssl=require&statement_cache_size=0",
    ],
)
def test_pooler_driver_options_in_the_url_are_refused_for_the_typed_setting(query: str) -> None:
    for name in ("database_url", "database_listen_url"):
        url = f"postgresql+asyncpg://seats@db/seats?{query}"
        with pytest.raises(ValueError, match="SEATS_DATABASE_POOLER=transaction"):
            Settings(jwt_secret=SECRET, **{name: url})


def test_pooler_settings_default_to_a_direct_connection_and_its_own_url_for_the_listener() -> None:
    settings = Settings(jwt_secret=SECRET, database_url="postgresql+asyncpg://seats@db/seats")
    assert settings.database_pooler == "none"
    assert settings.listen_url == settings.database_url
    listen = "postgresql+asyncpg://seats@primary/seats"
    assert Settings(jwt_secret=SECRET, database_listen_url=listen).listen_url == listen
    with pytest.raises(ValueError):
        Settings(jwt_secret=SECRET, database_pooler="statement")


@postgres_only
async def test_pooler_a_database_answered_by_pgbouncer_is_told_from_postgresql_itself() -> None:
    assert PG_URL
    direct = Database(PG_URL)
    try:
        assert not await direct.behind_pooler()
    finally:
        await direct.dispose()
    with PgBouncer(PG_URL) as bouncer:
        pooled = Database(bouncer.url, pooler="transaction")
        try:
            assert await pooled.behind_pooler()
        finally:
            await pooled.dispose()
