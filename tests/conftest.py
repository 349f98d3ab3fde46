"""Test fixtures: a real database (SQLite file, or PostgreSQL from TEST_DATABASE_URL), the app
over ASGI, tokens, and a seeded directory.

The same suite runs on both databases: ``make test`` runs it once without TEST_DATABASE_URL
(SQLite) and once against a throwaway PostgreSQL cluster.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.auth import mint_token
from app.cli import migrate
from app.config import Settings
from app.main import create_app

SECRET = "test-secret-" + "x" * 40
PG_URL = os.environ.get("TEST_DATABASE_URL")
ON_POSTGRES = bool(PG_URL)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class FixedClock:
    """A system clock stopped at ``now`` (``stored = False``: nothing is read for it), for
    tests that must not read the stored test clock and must not depend on the calendar."""

    stored = False

    def __init__(self, now: datetime) -> None:
        self.current = now

    async def now(self, session: Any) -> datetime:
        return self.current

    def now_from(self, stored_now: datetime | None) -> datetime:
        return self.current


# Empties every table of the schema (the migrations' bookkeeping aside) and restarts its
# sequences, in one round trip. DELETE rather than TRUNCATE: on tables this small TRUNCATE's
# new files cost ~10x more per test. ``session_replication_role = replica`` skips the triggers
# (the ledger refuses DELETE and TRUNCATE to every role, R11, and the foreign keys are
# triggers too, so the order does not matter); only a superuser may set it, so this is no
# back door for the runtime role. Read from the catalog, a table a migration adds is emptied
# without a list to keep up to date.
EMPTY_EVERY_TABLE = """
DO $$
DECLARE
    name text;
BEGIN
    SET LOCAL session_replication_role = replica;
    FOR name IN
        SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
        WHERE schemaname = current_schema() AND tablename <> 'alembic_version'
    LOOP
        EXECUTE 'DELETE FROM ' || name;
    END LOOP;
    PERFORM setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false)
    FROM pg_sequences WHERE schemaname = current_schema();
END
$$
"""


def pg_dsn() -> str:
    """The test database's URL as the plain DSN asyncpg connects to (tests that hold locks or
    kill sessions beside the app)."""
    assert PG_URL
    return PG_URL.replace("postgresql+asyncpg://", "postgresql://")


postgres_only = pytest.mark.skipif(not ON_POSTGRES, reason="needs PostgreSQL (TEST_DATABASE_URL)")


def pytest_report_header() -> str:
    return f"database: {'PostgreSQL ' + str(PG_URL) if ON_POSTGRES else 'SQLite'}"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "jwt_secret": SECRET,
        "test_clock": True,
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database migrated once per session: a SQLite file to copy, or the PostgreSQL URL."""
    if PG_URL:
        migrate(make_settings(PG_URL))
        return PG_URL
    path = tmp_path_factory.mktemp("db") / "template.db"
    migrate(make_settings(f"sqlite+aiosqlite:///{path}"))
    return str(path)


async def empty_postgres(engine: AsyncEngine) -> None:
    """Empty every table through ``engine``, connected as the test harness's superuser."""
    async with engine.connect() as conn:
        await conn.execute(text(EMPTY_EVERY_TABLE))


async def clean_postgres(url: str) -> None:
    """Empty every table of the database at ``url``, on a connection of its own."""
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        await empty_postgres(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def postgres_cleaner() -> AsyncIterator[AsyncEngine | None]:
    """One connection that empties the PostgreSQL database before each test (None on SQLite).

    Kept for the session (a new connection per test cost more than the emptying); the
    ping finds it dead after tests/faults restarted the server, and the pool reconnects.
    """
    if not PG_URL:
        yield None
        return
    engine = create_async_engine(
        PG_URL, pool_size=1, pool_pre_ping=True, isolation_level="AUTOCOMMIT"
    )
    yield engine
    await engine.dispose()


@pytest.fixture
async def database_url(
    migrated_template: str, tmp_path: Path, postgres_cleaner: AsyncEngine | None
) -> str:
    """A clean, migrated database for one test."""
    if PG_URL:
        assert postgres_cleaner is not None
        await empty_postgres(postgres_cleaner)
        return PG_URL
    path = tmp_path / "seats.db"
    shutil.copyfile(migrated_template, path)
    return f"sqlite+aiosqlite:///{path}"


def restore_sqlite(path: Path, template: str) -> None:
    """Put a fresh copy of the migrated ``template`` at ``path``, under a running server too.

    The service opens its SQLite file for every transaction (no pool, app/db.py), so its next
    request reads the new file: the same clean database a new server would have had.
    """
    staged = path.with_name(path.name + ".new")
    shutil.copyfile(template, staged)
    for journal in ("-wal", "-shm"):  # the old file's, never the new one's
        path.with_name(path.name + journal).unlink(missing_ok=True)
    os.replace(staged, path)


def shared_database_url(migrated_template: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database of a server that several tests share (see ``tests.live.on_clean_database``):
    PostgreSQL's one, which ``database_url`` empties before each test, or a SQLite file of its
    own, which ``restore_sqlite`` renews."""
    if PG_URL:
        return PG_URL
    path = tmp_path_factory.mktemp("shared-db") / "seats.db"
    shutil.copyfile(migrated_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """The app's settings; ``@pytest.mark.settings(name=value)`` overrides some for a test."""
    marker = request.node.get_closest_marker("settings")
    return make_settings(database_url, **(marker.kwargs if marker else {}))


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    yield application
    await application.state.gateway.aclose()
    await application.state.db.dispose()


@functools.cache
def token_settings() -> Settings:
    """The settings tokens are minted with, built once: a ``Settings`` reads the whole
    environment (~15 ms), and the tests mint a token for nearly every request."""
    return make_settings("sqlite://")


def user_token(account_id: str, user_id: str, **kwargs: Any) -> str:
    return mint_token(token_settings(), subject=user_id, account_id=account_id, **kwargs)


def service_token(subject: str = "platform") -> str:
    return mint_token(token_settings(), subject=subject)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    """An HTTP client over ASGI with helpers that read like the SPEC."""

    client: httpx.AsyncClient

    def as_user(self, account_id: str, user_id: str) -> dict[str, str]:
        return auth(user_token(account_id, user_id))

    def as_service(self) -> dict[str, str]:
        return auth(service_token())

    async def set_clock(self, now: datetime) -> None:
        r = await self.client.put(
            "/internal/v1/test-clock", json={"now": now.isoformat()}, headers=self.as_service()
        )
        assert r.status_code == 200, r.text

    async def put_account(self, account_id: str, **fields: Any) -> httpx.Response:
        body = {
            "name": account_id.title(),
            "billing_cycle": "monthly",
            "billing_anchor": "2026-11-01",
            "payment_method": "pm_card_visa",
            **fields,
        }
        return await self.client.put(
            f"/internal/v1/accounts/{account_id}", json=body, headers=self.as_service()
        )

    async def put_user(self, account_id: str, user_id: str, role: str = "user") -> httpx.Response:
        return await self.client.put(
            f"/internal/v1/accounts/{account_id}/users/{user_id}",
            json={"email": f"{user_id}@{account_id}.test", "name": user_id.title(), "role": role},
            headers=self.as_service(),
        )

    def url(self, account_id: str, path: str = "") -> str:
        return f"/v1/accounts/{account_id}/conversations{path}"

    async def call(
        self,
        method: str,
        account_id: str,
        path: str = "",
        *,
        user: str | None = None,
        json: Any = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        h = dict(self.as_user(account_id, user) if user else self.as_service())
        if key is not None:
            h["Idempotency-Key"] = key
        h.update(headers or {})
        return await self.client.request(method, self.url(account_id, path), json=json, headers=h)

    async def start_trial(self, account_id: str = "acme", user: str = "alice") -> httpx.Response:
        return await self.call("POST", account_id, "/trial", user=user)

    async def buy(
        self,
        seats: int,
        account_id: str = "acme",
        user: str = "alice",
        key: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        return await self.call(
            "POST",
            account_id,
            "/purchases",
            user=user,
            json={"seats": seats, **extra},
            key=key or uuid.uuid4().hex,
        )

    async def remove(
        self, seats: int, account_id: str = "acme", user: str = "alice"
    ) -> httpx.Response:
        return await self.call("POST", account_id, "/removals", user=user, json={"seats": seats})

    async def assign(
        self, user_id: str, account_id: str = "acme", user: str = "alice"
    ) -> httpx.Response:
        return await self.call("PUT", account_id, f"/agents/{user_id}", user=user)

    async def unassign(
        self, user_id: str, account_id: str = "acme", user: str = "alice"
    ) -> httpx.Response:
        return await self.call("DELETE", account_id, f"/agents/{user_id}", user=user)

    async def summary(self, account_id: str = "acme", user: str = "alice") -> dict[str, Any]:
        r = await self.call("GET", account_id, user=user)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def add_users(self, count: int, account_id: str = "acme", prefix: str = "u") -> list[str]:
        ids = [f"{prefix}{i}" for i in range(count)]
        for user_id in ids:
            assert (await self.put_user(account_id, user_id)).status_code in (200, 201)
        return ids


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def api(client: httpx.AsyncClient) -> Api:
    """The app with the clock at 2026-11-21 12:00 UTC and two accounts.

    ``acme`` (monthly, anchor 2026-11-01): alice primary admin, bob admin, carol user.
    ``globex`` (yearly, anchor 2026-03-15): gina primary admin.
    """
    return await seed_directory(Api(client))


async def seed_directory(api: Api) -> Api:
    """The clock at ``NOW``, and the accounts and users the ``api`` fixture describes."""
    await api.set_clock(NOW)
    assert (await api.put_account("acme")).status_code == 201
    for user_id, role in (("alice", "primary_admin"), ("bob", "admin"), ("carol", "user")):
        assert (await api.put_user("acme", user_id, role)).status_code == 201
    r = await api.put_account("globex", billing_cycle="yearly", billing_anchor="2026-03-15")
    assert r.status_code == 201
    assert (await api.put_user("globex", "gina", "primary_admin")).status_code == 201
    return api


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert ``response`` is a problem+json with this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    for field in ("type", "title", "detail"):
        assert isinstance(body[field], str) and body[field]
    return body


@pytest.fixture
async def sql(settings: Settings) -> AsyncIterator[Callable[[str], Any]]:
    """Run a SQL query against the test database and return all rows (for invariants).

    One engine for the test, beside the app's own: a new one per query paid a connection each.
    """
    engine = create_async_engine(settings.database_url, pool_pre_ping=True)

    async def run(query: str, **params: Any) -> list[Any]:
        async with engine.begin() as conn:  # committed: tests may corrupt data on purpose
            result = await conn.execute(text(query), params)
            return list(result.all()) if result.returns_rows else []

    yield run
    await engine.dispose()
