"""Out of connections is 503, never 500 (SPEC §7, Production topology: Connections).

The real refusals, each from the program that makes them: PostgreSQL's ``too many connections
for role`` (SQLSTATE 53300, a role's CONNECTION LIMIT), PgBouncer 1.18's ``no more connections
allowed (max_client_conn)`` at connect, its ``query_wait_timeout`` in the middle of a request
and a server login it could not make, and the prepared-statement errors (42P05) of a service
that was not told it runs behind a transaction pooler. Each is lowered under a running ``seats
serve --workers 2`` once it holds its connections, then a burst on every kind of route (the
agent check's own route, a FastAPI read, a write, a purchase with its idempotency key) must
answer ``503 service_unavailable`` with ``Retry-After`` where it cannot get a connection, and
never ``500``. ``seats verify`` holds afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from app.cli import migrate
from app.config import Settings
from tests.conftest import PG_URL, Api, make_settings, pg_dsn, problem
from tests.live import LiveServer
from tests.pgbouncer import PgBouncer, pgbouncer_version
from tests.races.conftest import assert_invariants

pytestmark = pytest.mark.skipif(not PG_URL, reason="connection limits need PostgreSQL")
needs_pgbouncer = pytest.mark.skipif(pgbouncer_version() is None, reason="needs pgbouncer")

LIMITED = "seats_limited"
# Each burst is this many requests at once, over both workers: many more than the connections
# each worker holds after the warm-up, so most of them must open one.
BURST = 24
Request = Callable[[Api, int], Awaitable[httpx.Response]]


def _agent_check(api: Api, n: int) -> Awaitable[httpx.Response]:
    # Another user each time: none is answered from the worker's cache, every one reads.
    return api.call("GET", "acme", f"/agents/u{n}", user="alice")


def _summary(api: Api, n: int) -> Awaitable[httpx.Response]:
    return api.call("GET", "acme", user="alice")


def _assign(api: Api, n: int) -> Awaitable[httpx.Response]:
    return api.assign(f"u{n}")


def _purchase(api: Api, n: int) -> Awaitable[httpx.Response]:
    return api.buy(25 + n, key=uuid.uuid4().hex)


ROUTES: dict[str, Request] = {
    "agent check": _agent_check,
    "summary": _summary,
    "assign": _assign,
    "purchase": _purchase,
}
# What each route may answer when it does get a connection: the seats run out, purchases
# queue behind each other.
ANSWERED = {200, 201, 409}
# A request here waits at most for a pooled connection (10 s), then for PgBouncer's
# query_wait_timeout: generous, so that a busy CI machine reads a late answer, not a hang; a
# request that truly hangs still fails the test.
CLIENT_TIMEOUT = 60


async def _seed(api: Api) -> None:
    """acme (alice, bob, carol) on a trial, with the users the bursts ask about."""
    assert (await api.start_trial()).status_code == 201
    await api.add_users(BURST * 2)


async def _warm(api: Api) -> None:
    """A few requests of every kind, one at a time: each worker opens the connections it
    needs for one request of each kind, and keeps them."""
    for n in range(6):
        for route in (_agent_check, _summary):
            assert (await route(api, n)).status_code == 200


async def _bursts(api: Api) -> dict[str, list[httpx.Response]]:
    answers = {}
    for name, route in ROUTES.items():
        answers[name] = await asyncio.gather(*(route(api, n) for n in range(BURST)))
    return answers


def _assert_503_never_500(
    answers: dict[str, list[httpx.Response]], server: LiveServer, *, every_route: bool
) -> None:
    seen = {name: sorted({r.status_code for r in rs}) for name, rs in answers.items()}
    for name, responses in answers.items():
        for r in responses:
            assert r.status_code in ANSWERED | {503}, (name, r.text, _unhandled(server))
            if r.status_code == 503:
                problem(r, 503, "service_unavailable")
                assert int(r.headers["retry-after"]) >= 1
                assert r.headers["x-request-id"]
        if every_route:
            assert 503 in {r.status_code for r in responses}, (name, seen)
    assert any(r.status_code == 503 for rs in answers.values() for r in rs), seen


def _logged_why(server: LiveServer, *causes: str) -> bool:
    """Whether the service logged a 503 of the database's in one line that names ``causes``."""
    return any(
        "database unavailable" in line and all(cause in line for cause in causes)
        for line in server.stderr_text().splitlines()
    )


def _unhandled(server: LiveServer) -> str:
    """The service's log from its first unhandled error on: the traceback of a 500."""
    log = server.stderr_text()
    return log[log.find("unhandled error") :][:6000]


async def _superuser(*statements: str) -> None:
    conn = await asyncpg.connect(pg_dsn())
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _connections_of(role: str) -> int:
    conn = await asyncpg.connect(pg_dsn())
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role
        )
        return count
    finally:
        await conn.close()


def _drop(role: str) -> tuple[str, ...]:
    return (
        f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f"PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'; "
        f"DROP OWNED BY {role}; DROP ROLE {role}; END IF; END $$",
    )


@pytest.fixture
async def limited_role(database_url: str) -> AsyncIterator[str]:
    """``seats_limited``, a runtime role granted by ``seats migrate``: its URL."""
    await _superuser(*_drop(LIMITED), f"CREATE ROLE {LIMITED} LOGIN")
    await asyncio.to_thread(migrate, make_settings(database_url, database_app_role=LIMITED))
    yield make_url(database_url).set(username=LIMITED).render_as_string(hide_password=False)
    await _superuser(*_drop(LIMITED))


async def test_too_many_connections_for_the_role_answers_503_on_every_route(
    api: Api, limited_role: str, settings: Settings
) -> None:
    await _seed(api)
    with LiveServer(limited_role, workers=2, args=("--no-migrate",)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
            live = Api(client)
            await _warm(live)
            # From now on the role may not open one more connection (53300 for the next).
            held = await _connections_of(LIMITED)
            await _superuser(f"ALTER ROLE {LIMITED} CONNECTION LIMIT {held}")
            try:
                answers = await _bursts(live)
            finally:
                await _superuser(f"ALTER ROLE {LIMITED} CONNECTION LIMIT -1")
            _assert_503_never_500(answers, server, every_route=True)
            assert _logged_why(server, "TooManyConnectionsError (53300): too many connections")
            # With connections to be had again, the same workers answer.
            assert (await _agent_check(live, 0)).status_code == 200
            assert (await _summary(live, 0)).status_code == 200
    await assert_invariants(settings)


@pytest.fixture
def session_pooler(database_url: str) -> Iterator[PgBouncer]:
    """PgBouncer in session mode: the service's statements are its own, so whatever the
    service answers here comes from the pooler's refusals alone."""
    with PgBouncer(
        database_url,
        pool_mode="session",
        max_client_conn=200,
        default_pool_size=100,
        query_wait_timeout=1,
    ) as bouncer:
        yield bouncer


@needs_pgbouncer
@pytest.mark.parametrize("refusal", ["max_client_conn", "query_wait_timeout"])
async def test_pgbouncer_refusals_answer_503_on_every_route(
    refusal: str, api: Api, session_pooler: PgBouncer, settings: Settings
) -> None:
    await _seed(api)
    with LiveServer(session_pooler.url, workers=2) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
            live = Api(client)
            await _warm(live)
            held = session_pooler.clients()
            if refusal == "max_client_conn":
                # A new client is refused at connect ("no more connections allowed").
                session_pooler.reload(max_client_conn=held)
            else:
                # A new client logs in, then waits for a server that never frees up (session
                # mode) and is dropped in the middle of its request.
                session_pooler.reload(default_pool_size=held)
            answers = await _bursts(live)
            _assert_503_never_500(answers, server, every_route=True)
            assert _logged_why(server, "(08P01)", refusal), server.stderr_text()[-3000:]
            assert refusal in session_pooler.log_text()
    await assert_invariants(settings)


@needs_pgbouncer
async def test_pgbouncer_failed_server_login_answers_503_on_every_route(
    api: Api, limited_role: str, settings: Settings
) -> None:
    """PgBouncer sized beyond what PostgreSQL lets the role open: its server logins fail
    (53300 at the server), which it passes on to its clients as its own 08P01, or holds them
    until ``query_wait_timeout`` (set short, as docs/operators/fleet.md says)."""
    await _seed(api)
    with (
        PgBouncer(
            limited_role,
            pool_mode="session",
            default_pool_size=100,
            query_wait_timeout=2,
            extra={"server_login_retry": "1"},
        ) as bouncer,
        LiveServer(bouncer.url, workers=2, args=("--no-migrate",)) as server,
    ):
        async with httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
            live = Api(client)
            await _warm(live)
            held = await _connections_of(LIMITED)
            await _superuser(f"ALTER ROLE {LIMITED} CONNECTION LIMIT {held}")
            try:
                answers = await _bursts(live)
            finally:
                await _superuser(f"ALTER ROLE {LIMITED} CONNECTION LIMIT -1")
            _assert_503_never_500(answers, server, every_route=True)
            assert _logged_why(server, "(08P01)"), server.stderr_text()[-3000:]
            assert "too many connections" in bouncer.log_text()
    await assert_invariants(settings)


@needs_pgbouncer
async def test_prepared_statement_errors_behind_a_transaction_pooler_answer_503(
    api: Api, database_url: str, settings: Settings
) -> None:
    """A service not told that it runs behind PgBouncer 1.18 in transaction mode
    (``SEATS_DATABASE_POOLER=none``): with one server connection for every client, the two
    workers name their statements alike (``__asyncpg_stmt_1__``...), and whichever prepares a
    name second is refused (42P05 "already exists"). That answers 503, never 500.

    Nothing here removes a statement that a worker has cached (a ``DEALLOCATE ALL``, a server
    connection closed by the pooler): the name could then be prepared again by the other
    worker, and the first would run the other's statement, which no error mapping can catch.
    SEATS_DATABASE_POOLER=transaction is the fix; the 26000 of a missing statement is mapped
    as 42P05 is (tests/test_errors.py)."""
    await _seed(api)
    with (
        PgBouncer(database_url, pool_mode="transaction", default_pool_size=1) as bouncer,
        LiveServer(bouncer.url, workers=2, SEATS_DATABASE_POOLER="none") as server,
    ):
        async with httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
            live = Api(client)
            await _warm_through_collisions(live)
            answers = await _bursts(live)
            _assert_503_never_500(answers, server, every_route=False)
            assert _logged_why(server, "(42P05)", "SEATS_DATABASE_POOLER=transaction")
    await assert_invariants(settings)


async def _warm_through_collisions(api: Api) -> None:
    """Like ``_warm``, but some of these requests meet the other worker's statements: each
    must answer as it would directly, or 503."""
    for n in range(6):
        for route in (_agent_check, _summary):
            r = await route(api, n)
            assert r.status_code in (200, 503), r.text
            if r.status_code == 503:
                problem(r, 503, "service_unavailable")
