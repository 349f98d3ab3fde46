"""Faults: a crash between charge and commit, a connection killed while waiting on the plan's
lock, and the database going away and coming back. Run against the real server on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.config import Settings
from tests.conftest import NOW, PG_URL, Api, pg_dsn, problem
from tests.live import LiveServer, buy_until_killed, crash_env
from tests.payments_server import PaymentsServer
from tests.races.conftest import assert_invariants

pytestmark = pytest.mark.skipif(not PG_URL, reason="fault tests need PostgreSQL")


async def seed(api: Api) -> None:
    await api.set_clock(NOW)
    assert (await api.put_account("acme")).status_code == 201
    for user_id, role in (("alice", "primary_admin"), ("bob", "admin")):
        assert (await api.put_user("acme", user_id, role)).status_code == 201


@pytest.fixture
def payments() -> Iterator[PaymentsServer]:
    with PaymentsServer() as server:
        yield server


@pytest.mark.parametrize("recovery", ["retry_with_same_key", "billing_run"])
async def test_r6_crash_between_charge_and_commit_charges_once(
    recovery: str,
    database_url: str,
    settings: Settings,
    payments: PaymentsServer,
    sql: Callable[..., Any],
) -> None:
    env = crash_env(payments.url)
    key = uuid.uuid4().hex
    await buy_until_killed(database_url, "after_charge", env, key)

    [(invoice_id, status)] = await sql("SELECT id, status FROM invoice")
    assert status == "pending"
    assert [c["idempotency_key"] for c in payments.charges] == [invoice_id]  # charged once
    [(seats, plan_status)] = await sql("SELECT seats, status FROM plan WHERE account_id='acme'")
    assert (seats, plan_status) == (0, "none")  # never seats without a paid invoice

    with LiveServer(database_url, workers=1, **env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            api = Api(client)
            # The dead request's key lock and its attempt's lease expire.
            await asyncio.sleep(0.6)
            if recovery == "billing_run":
                r = await client.post("/internal/v1/billing/run", headers=api.as_service())
                assert r.json()["purchases_completed"] == 1
            r = await api.buy(5, key=key)
            assert r.status_code == 201, r.text
            assert r.json()["invoice"]["id"] == invoice_id
            assert r.json()["summary"]["seats"] == 5

    assert len(payments.charges) == 1
    [(status, charge_id)] = await sql("SELECT status, charge_id FROM invoice")
    assert (status, charge_id) == ("paid", payments.charges[0]["id"])
    [(events,)] = await sql("SELECT COUNT(*) FROM event WHERE type = 'seats.purchased'")
    assert events == 1  # the seats were applied once
    # The dead call's intent stays on record without an outcome; the resend used its key.
    tries = await sql(
        "SELECT a.number, a.gateway_key, o.outcome FROM charge_attempt a "
        "LEFT JOIN charge_outcome o ON o.invoice_id = a.invoice_id AND o.number = a.number "
        "ORDER BY a.number"
    )
    assert [tuple(t) for t in tries] == [(1, invoice_id, None), (2, invoice_id, "succeeded")]
    await assert_invariants(settings)


@pytest.fixture
async def live_api(database_url: str) -> AsyncIterator[Api]:
    with LiveServer(database_url, workers=2) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            api = Api(client)
            await seed(api)
            yield api
        import sys

        print(server.stderr_text()[-6000:], file=sys.stderr)


async def test_terminated_connection_while_the_plan_is_locked_fails_cleanly(
    live_api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    assert (await live_api.start_trial()).status_code == 201
    await live_api.add_users(1)
    blocker = await asyncpg.connect(pg_dsn())
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM plan WHERE account_id = 'acme' FOR UPDATE")
        request = asyncio.create_task(live_api.assign("u0", user="bob"))
        pid = None
        for _ in range(100):  # the request's session now waits for our lock
            pid = await blocker.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'seats' "
                "AND wait_event_type = 'Lock'"
            )
            if pid:
                break
            await asyncio.sleep(0.05)
        assert pid, "the request never waited for the plan lock"
        await blocker.execute("SELECT pg_terminate_backend($1)", pid)
        response = await request
        await tx.rollback()
    finally:
        await blocker.close()

    problem(response, 503, "service_unavailable")
    assert response.headers["x-request-id"]
    # Nothing half-applied, and no session left holding a transaction or a lock.
    [(assigned,)] = await sql("SELECT assigned FROM plan WHERE account_id = 'acme'")
    [(rows,)] = await sql("SELECT COUNT(*) FROM assignment")
    assert (assigned, rows) == (0, 0)
    stuck = await sql(
        "SELECT pid, state FROM pg_stat_activity WHERE application_name = 'seats' "
        "AND state LIKE 'idle in transaction%'"
    )
    assert stuck == []
    # The pool recovers by itself: the same request now succeeds.
    assert (await live_api.assign("u0", user="bob")).status_code == 201
    await assert_invariants(settings)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


async def test_database_restart_gives_503_then_recovers_without_restarting_the_service(
    live_api: Api, settings: Settings
) -> None:
    bindir, datadir = os.environ.get("TEST_PG_BINDIR"), os.environ.get("TEST_PG_DATADIR")
    if not bindir or not datadir:
        pytest.skip("needs the throwaway cluster of scripts/with-postgres")
    opts = shlex.split(Path(datadir, "postmaster.opts").read_text())
    options = shlex.join([o for o in opts[1:] if o not in ("-D", datadir)])
    pg_ctl = str(Path(bindir, "pg_ctl"))
    assert (await live_api.start_trial()).status_code == 201

    subprocess.run(_as_postgres([pg_ctl, "-D", datadir, "-m", "fast", "-w", "stop"]), check=True)
    try:
        down = await live_api.call("GET", "acme", user="alice")
        problem(down, 503, "service_unavailable")
        ready = await live_api.client.get("/readyz")
        problem(ready, 503, "not_ready")
        assert (await live_api.client.get("/healthz")).status_code == 200
    finally:
        subprocess.run(
            _as_postgres(
                [
                    pg_ctl,
                    "-D",
                    datadir,
                    "-o",
                    options,
                    "-l",
                    f"{datadir}/restart.log",
                    "-w",
                    "start",
                ]
            ),
            check=True,
        )

    deadline = time.monotonic() + 20
    while (await live_api.client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "readyz did not recover"
        await asyncio.sleep(0.2)
    summary = await live_api.summary()
    assert summary["status"] == "trialing"
    assert (await live_api.assign("bob", user="alice")).status_code == 201
    await assert_invariants(settings)


async def test_hot_read_on_a_killed_connection_is_503_then_recovers(live_api: Api) -> None:
    """The agent check runs on the driver's connection under the pool: a connection the
    database dropped must still answer 503 (never 500, never a wrong answer) and leave the pool
    to heal, as SQLAlchemy's own execution does. Each check asks of another user, so none is
    answered from the worker's cache (app/entitlements.py): every one reads the database."""
    assert (await live_api.start_trial()).status_code == 201
    users = iter(await live_api.add_users(60))

    async def check() -> tuple[str, httpx.Response]:
        user = next(users)
        return user, await live_api.call("GET", "acme", f"/agents/{user}", user="alice")

    def ok(user: str) -> dict[str, object]:
        return {"user_id": user, "agent": False, "active": False}

    # Both workers hold pooled read connections.
    for user, response in await asyncio.gather(*(check() for _ in range(20))):
        assert response.json() == ok(user)
    killer = await asyncpg.connect(pg_dsn())
    try:
        killed = await killer.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'seats' AND state = 'idle'"
        )
    finally:
        await killer.close()
    assert killed >= 2
    statuses = []
    for _ in range(30):
        user, response = await check()
        statuses.append(response.status_code)
        if response.status_code == 503:
            problem(response, 503, "service_unavailable")
            assert response.headers["x-request-id"]
        else:
            assert response.json() == ok(user), response.text
    assert set(statuses) <= {200, 503}
    assert 503 in statuses, "no request met a dropped connection"
    assert statuses[-10:] == [200] * 10, statuses
