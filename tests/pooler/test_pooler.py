"""The service behind PgBouncer in transaction pooling mode (Debian's 1.18): every request,
the CLI's commands and the migrations answer as they do straight to PostgreSQL.

Behind a transaction pooler two statements of one client may run on two server connections,
and one server connection serves many clients in turn: a named statement prepared by one
client is visible to (and collides with) the next, and one prepared outside a transaction may
be gone when it is executed. ``SEATS_DATABASE_POOLER=transaction`` makes every unit of work
safe there (app/db.py).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.main import create_app
from tests.conftest import PG_URL, SECRET, Api, make_settings, postgres_only, seed_directory
from tests.live import LiveServer
from tests.pgbouncer import PgBouncer
from tests.webhooks.conftest import WorkerProcess, create_endpoint
from tests.webhooks.helpers import make_events
from tests.webhooks.receiver import Receiver

pytestmark = postgres_only


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    assert PG_URL
    # Fewer server connections than the app's pool: clients share them, as in production. A
    # PgBouncer that maps named statements (1.21+, ``PGBOUNCER``) maps them; 1.18 ignores it.
    with PgBouncer(PG_URL, default_pool_size=4, max_prepared_statements=200) as running:
        yield running


@pytest.fixture(params=["transaction", "none"])
async def pooled_api(
    database_url: str, bouncer: PgBouncer, request: pytest.FixtureRequest
) -> AsyncIterator[Api]:
    """The app through PgBouncer: with unnamed statements (``transaction``), and with asyncpg's
    named ones (``none``) where PgBouncer maps them (1.21+ with max_prepared_statements)."""
    if request.param == "none" and not bouncer.supports_prepared_statements:
        pytest.skip(f"PgBouncer {bouncer.version} keeps no named statements (PGBOUNCER=1.21+)")
    app = create_app(
        make_settings(bouncer.url, database_pooler=request.param, webhook_allow_hosts="127.0.0.1")
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield await seed_directory(Api(client))
    await app.state.gateway.aclose()
    await app.state.db.dispose()


def no_server_errors(responses: list[httpx.Response]) -> None:
    errors = [(r.request.method, r.request.url.path, r.text[:300]) for r in responses]
    assert [e for e, r in zip(errors, responses, strict=True) if r.status_code >= 500] == []


async def test_pooler_walkthrough_answers_without_a_500_through_pgbouncer_transaction_mode(
    pooled_api: Api,
) -> None:
    api = pooled_api
    bob = api.as_user("acme", "bob")
    answers = [
        await api.start_trial(),
        await api.assign("bob"),
        await api.client.get(api.url("acme", "/agents/bob"), headers=bob),
        await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 25}),
        await api.buy(25),
        await api.call("GET", "acme", "/invoices", user="alice"),
        await api.call("GET", "acme", "/events", user="alice"),
        await api.call("GET", "acme", user="alice"),
        await api.client.post("/internal/v1/billing/run", headers=api.as_service()),
        await api.unassign("bob"),
    ]
    no_server_errors(answers)
    assert [r.status_code for r in answers[:5]] == [201, 201, 200, 201, 201]
    # Many requests at once: the app's connections share PgBouncer's few server connections.
    burst = await asyncio.gather(
        *(api.call("GET", "acme", user="alice") for _ in range(40)),
        *(api.client.get(api.url("acme", "/agents/carol"), headers=bob) for _ in range(40)),
        *(api.call("POST", "acme", "/quotes", user="alice", json={"seats": 30}) for _ in range(10)),
        *(api.assign(f"u{i}") for i in range(5)),
    )
    no_server_errors(list(burst))
    assert {r.status_code for r in burst[:80]} == {200}


async def test_pooler_purchases_with_one_key_answer_once_through_pgbouncer(
    pooled_api: Api,
) -> None:
    api = pooled_api
    assert (await api.start_trial()).status_code == 201
    key = uuid.uuid4().hex
    answers = await asyncio.gather(*(api.buy(25, key=key) for _ in range(6)))
    no_server_errors(list(answers))
    assert {r.status_code for r in answers} <= {201, 409}
    assert any(r.status_code == 201 for r in answers)


def seats(command: str, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *command.split()],
        env={
            **os.environ,
            "SEATS_DATABASE_URL": url,
            "SEATS_DATABASE_POOLER": "transaction",
            "SEATS_JWT_SECRET": SECRET,
            "SEATS_TEST_CLOCK": "1",
            "SEATS_LOG_LEVEL": "WARNING",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_pooler_migrate_twice_verify_and_billing_run_exit_0_through_pgbouncer(
    pooled_api: Api, bouncer: PgBouncer
) -> None:
    api = pooled_api
    assert (await api.start_trial()).status_code == 201
    assert (await api.buy(25)).status_code == 201
    exits = []
    for command in ("migrate", "migrate", "verify", "billing run", "billing run"):
        done = await asyncio.to_thread(seats, command, bouncer.url)
        exits.append((command, done.returncode, done.stderr[-600:] if done.returncode else ""))
    assert [(command, code) for command, code, _ in exits] == [
        ("migrate", 0),
        ("migrate", 0),
        ("verify", 0),
        ("billing run", 0),
        ("billing run", 0),
    ], exits


async def test_pooler_serve_no_migrate_starts_through_pgbouncer(bouncer: PgBouncer) -> None:
    env = {"SEATS_DATABASE_POOLER": "transaction"}
    with LiveServer(bouncer.url, workers=1, args=("--no-migrate",), **env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            answers = [await client.get("/readyz") for _ in range(20)]
    no_server_errors(answers)
    assert {r.status_code for r in answers} == {200}


async def test_pooler_webhook_worker_delivers_every_event_once_through_pgbouncer(
    pooled_api: Api, bouncer: PgBouncer
) -> None:
    api = pooled_api
    with Receiver() as receiver:
        endpoint = await create_endpoint(api, receiver.url("/a"))
        receiver.trust(endpoint["secret"])
        ids = await make_events(api, 4)
        worker = WorkerProcess(bouncer.url, SEATS_DATABASE_POOLER="transaction").start()
        try:
            got = await receiver.until(4, timeout=60)
            await asyncio.sleep(0.5)  # nothing more comes
            got = receiver.deliveries
        finally:
            code = worker.terminate()
            output = worker.output()
            worker.stop()
    assert sorted(d.id for d in got) == sorted(ids), output
    assert code == 0 and "Traceback" not in output, output
