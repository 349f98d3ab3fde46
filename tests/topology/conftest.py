"""The production topology on loopback (SPEC §7 "Production topology"): PostgreSQL, Debian's
PgBouncer in transaction pooling mode, and two ``seats serve --workers 2 --no-migrate``
instances through it, each worker's listener connected straight to PostgreSQL.

A database of its own (``seats_fleet``), owned and migrated by a non-superuser owner and served
by the runtime role, as the README's "Running in production" deploys it. The tests share the
fleet (starting it costs seconds); each works on accounts of its own instead of emptying the
database, so no worker's cache can hold an answer from an earlier test.

PgBouncer comes from ``tests/pgbouncer.py``; without it the module skips, except under
``CI=true``, where a missing ``pgbouncer`` fails it (``.ci/run`` installs the package).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import NOW, PG_URL, SECRET, Api
from tests.live import LiveServer
from tests.payments_server import PaymentsServer
from tests.pgbouncer import PGBOUNCER, PgBouncer, pgbouncer_version

DATABASE = "seats_fleet"
OWNER, APP = "seats_fleet_owner", "seats_fleet_app"
# A runtime role with a handful of connections: the exhaustion test runs out of them.
SMALL = "seats_fleet_small"
SMALL_LIMIT = 3
WORKERS = 2
POOL_SIZE = 5


def require_pgbouncer() -> None:
    """Skip without ``pgbouncer``; fail under CI, which must run these tests."""
    if pgbouncer_version() is not None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the topology tests, and {PGBOUNCER} is missing")
    pytest.skip(f"no pgbouncer at {PGBOUNCER} (Debian package `pgbouncer`); CI installs it")


def direct_url(user: str, database: str = DATABASE) -> str:
    """The SQLAlchemy URL of ``database`` as ``user``, straight to PostgreSQL."""
    assert PG_URL
    return make_url(PG_URL).set(username=user, database=database).render_as_string(False)


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def superuser() -> str:
    assert PG_URL
    return str(make_url(PG_URL).username)


class FleetBouncer(PgBouncer):
    """PgBouncer that knows every role of the fleet (``auth_type = trust`` still needs each
    user named in its ``auth_file``)."""

    def __init__(self, database_url: str, users: tuple[str, ...], **options: Any) -> None:
        super().__init__(database_url, **options)
        self.users = users

    def _config(self) -> str:
        assert self.dir is not None
        (self.dir / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in self.users))
        return super()._config()

    def url_as(self, user: str) -> str:
        """This pooler's URL, logging in as ``user``."""
        return make_url(self.url).set(username=user).render_as_string(False)


async def as_superuser(*statements: str, database: str = "postgres") -> None:
    conn = await asyncpg.connect(dsn(direct_url(superuser(), database)))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def create_role(name: str, extra: str = "") -> str:
    return (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') "
        f"THEN CREATE ROLE {name} LOGIN {extra}; END IF; END $$"
    )


def run_seats(*args: str, database_url: str, timeout: float = 120, **env: str) -> Any:
    """``seats ARGS`` as its own process, as cron or an operator runs it; the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={
            **os.environ,
            "SEATS_DATABASE_URL": database_url,
            "SEATS_JWT_SECRET": SECRET,
            "SEATS_TEST_CLOCK": "1",
            "SEATS_LOG_LEVEL": "WARNING",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Fleet:
    """Two instances behind one PgBouncer, and what the tests check them with."""

    bouncer: FleetBouncer
    instances: tuple[LiveServer, LiveServer]
    payments: PaymentsServer
    env: dict[str, str]  # the service's settings beside SEATS_DATABASE_URL

    @property
    def pooled_url(self) -> str:
        """The runtime role's URL through the pooler, as the service connects."""
        return self.bouncer.url_as(APP)

    def seats(self, *args: str, user: str = APP, **env: str) -> Any:
        """``seats ARGS`` through the pooler, with the service's settings."""
        return run_seats(*args, database_url=self.bouncer.url_as(user), **{**self.env, **env})

    def logs(self) -> str:
        """Every instance's log, and PgBouncer's (shown when a test fails)."""
        parts = [
            f"--- instance {i}\n{s.stderr_text()[-4000:]}" for i, s in enumerate(self.instances)
        ]
        return "\n".join([*parts, f"--- pgbouncer\n{self.bouncer.log_text()[-4000:]}"])


def fleet_env(payments: PaymentsServer) -> dict[str, str]:
    """The settings every process of the fleet runs with, beside SEATS_DATABASE_URL."""
    return {
        "SEATS_DATABASE_POOLER": "transaction",
        # LISTEN never goes through a transaction pooler: each worker's listener connects
        # straight to the primary (SPEC §7, Listener).
        "SEATS_DATABASE_LISTEN_URL": direct_url(APP),
        "SEATS_DATABASE_POOL_SIZE": str(POOL_SIZE),
        "SEATS_PAYMENTS_GATEWAY": "http",
        "SEATS_PAYMENTS_URL": payments.url,
        "SEATS_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "SEATS_WEBHOOK_POLL_SECONDS": "0.05",
    }


@pytest.fixture(scope="module")
def fleet_database() -> Iterator[None]:
    """``seats_fleet``, owned by its owner and migrated straight to PostgreSQL (the setup; the
    migration through the pooler is a test), its runtime role granted, and a small role that
    is a member of the runtime role with a connection limit of ``SMALL_LIMIT``."""
    if not PG_URL:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL)")
    require_pgbouncer()
    drop = f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
    asyncio.run(
        as_superuser(
            drop,
            create_role(OWNER),
            create_role(APP),
            create_role(SMALL, f"IN ROLE {APP} CONNECTION LIMIT {SMALL_LIMIT}"),
            f"CREATE DATABASE {DATABASE} OWNER {OWNER}",
        )
    )
    done = run_seats("migrate", database_url=direct_url(OWNER), SEATS_DATABASE_APP_ROLE=APP)
    assert done.returncode == 0, done.stderr
    yield
    asyncio.run(
        as_superuser(drop, *(f"DROP ROLE IF EXISTS {role}" for role in (SMALL, APP, OWNER)))
    )


@pytest.fixture(scope="module")
def fleet(fleet_database: None) -> Iterator[Fleet]:
    """PgBouncer 1.18 (``pool_mode = transaction``) and two instances of two workers each."""
    with (
        PaymentsServer() as payments,
        FleetBouncer(direct_url(APP), (OWNER, APP, SMALL), default_pool_size=20) as bouncer,
    ):
        env = fleet_env(payments)
        instances = tuple(
            LiveServer(bouncer.url_as(APP), workers=WORKERS, args=("--no-migrate",), **env)
            for _ in range(2)
        )
        try:
            for instance in instances:
                instance.start()
            yield Fleet(bouncer, (instances[0], instances[1]), payments, env)
        finally:
            for instance in instances:
                instance.__exit__(None, None, None)


@pytest.fixture
async def apis(fleet: Fleet) -> AsyncIterator[tuple[Api, Api]]:
    """One ``Api`` per instance, the clock at ``NOW``."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with (
        httpx.AsyncClient(base_url=fleet.instances[0].url, limits=limits, timeout=30) as a,
        httpx.AsyncClient(base_url=fleet.instances[1].url, limits=limits, timeout=30) as b,
    ):
        first = Api(a)
        await first.set_clock(NOW)
        yield first, Api(b)


@pytest.fixture
async def sql(fleet_database: None) -> AsyncIterator[Any]:
    """Run SQL on ``seats_fleet`` as the superuser, straight to PostgreSQL (for invariants)."""
    conn = await asyncpg.connect(dsn(direct_url(superuser())))

    async def run(query: str, *args: Any) -> list[Any]:
        return list(await conn.fetch(query, *args))

    try:
        yield run
    finally:
        await conn.close()
