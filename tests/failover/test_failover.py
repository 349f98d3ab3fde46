"""Failover (SPEC §7 "Production topology": Failover): the primary stopped hard under load and
its streaming standby promoted, with no process of the service restarted.

A primary of the test's own and a standby of it (tests/standby.py), replicating synchronously
(a commit returns once the standby has it: nothing committed is lost by construction). One
``seats serve --workers 2`` instance and one ``seats webhooks deliver`` worker, all on one
multi-host ``SEATS_DATABASE_URL`` with ``target_session_attrs=read-write``, in both orders of
the hosts. Under a bounded load of purchases (each with its Idempotency-Key, retried on every
"try again later"), assigns and agent checks from clients kept on each worker, one purchase is
held at the loopback payments server while the primary is stopped (``pg_ctl stop -m
immediate``), so that it is cut off between its charge and its record; then the standby is
promoted. Afterwards, within 15 s of the promotion (the contract's bound):

* every worker writes again, each worker's listener listens on the new primary, and the
  webhook worker delivers an event made after the promotion;
* every purchase key, the cut-off one included, has answered 201 (a retry is never told
  ``idempotency_key_in_use`` until the key's 60 s lock runs out);

and over the whole run no request answered 500, and every 503 carried Retry-After. Then, in SQL
on the new primary and at the payments server: every purchase that answered 201 is paid in the
ledger, the captures equal the paid invoices (no key charged twice), every worker's cache
serves again and a revocation reaches every worker within 100 ms, and ``seats verify`` and a
billing run exit 0.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from app.cli import migrate
from tests.conftest import NOW, PG_URL, Api, make_settings, user_token
from tests.entitlements.helpers import unannounced
from tests.live import LiveServer
from tests.payments_server import PaymentsServer
from tests.pinned import Pinned, close_all, pin_to_every_worker
from tests.standby import Primary, Standby, multi_host_url
from tests.topology.conftest import run_seats
from tests.webhooks.conftest import WorkerProcess, create_endpoint
from tests.webhooks.receiver import Receiver

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="needs the PostgreSQL server binaries"),
    pytest.mark.server,
]

DATABASE = "seats"
BUYERS = ("buyer0", "buyer1", "buyer2")
CHECKED = "checked"  # bob is its agent; clients kept on each worker ask for his check
CHECK = f"/v1/accounts/{CHECKED}/conversations/agents/bob"
# The contract: the service follows a promoted standby within this long, and a revocation is
# visible on every worker this long after its commit.
FOLLOW_SECONDS = 15.0
REVOCATION_DEADLINE = 0.1
# How long the payments server holds the purchase that the primary's death cuts off.
HELD_SECONDS = 2.0
# The dead primary's and the promotion's gap: longer than the held purchase, so its record
# finds no database.
OUTAGE_SECONDS = HELD_SECONDS + 0.5
SERVICE_ENV = {
    "SEATS_PAYMENTS_GATEWAY": "http",
    # A purchase cut off after its charge is sent again (same gateway key) this soon.
    "SEATS_COLLECTION_LEASE_SECONDS": "1",
    "SEATS_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "SEATS_WEBHOOK_POLL_SECONDS": "0.05",
    "SEATS_DATABASE_POOL_SIZE": "10",
}


@dataclass
class Seen:
    """Every answer of the run, by status, and what broke the contract."""

    statuses: Counter[int] = field(default_factory=Counter)
    broken: list[str] = field(default_factory=list)
    paid: dict[str, str] = field(default_factory=dict)  # purchase key -> its invoice
    unresolved: set[str] = field(default_factory=set)
    last: dict[str, str] = field(default_factory=dict)  # purchase key -> its last answer

    def record(self, what: str, r: httpx.Response) -> None:
        self.statuses[r.status_code] += 1
        if r.status_code >= 500 and r.status_code != 503:
            self.broken.append(f"{what}: {r.status_code} {r.text[:300]}")
        if r.status_code == 503 and "retry-after" not in r.headers:
            self.broken.append(f"{what}: 503 without Retry-After {r.text[:300]}")


async def rows(url: str, query: str, *args: Any) -> list[Any]:
    """The rows of one query on the server of ``url``."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def seed(api: Api, receiver: Receiver) -> None:
    await api.set_clock(NOW)
    for account in (*BUYERS, CHECKED):
        assert (await api.put_account(account)).status_code == 201
        for user_id, role in (("alice", "primary_admin"), ("carol", "user"), ("bob", "user")):
            assert (await api.put_user(account, user_id, role)).status_code == 201
        assert (await api.start_trial(account)).status_code == 201
    assert (await api.put_user(CHECKED, "dave")).status_code == 201
    assert (await api.assign("bob", CHECKED)).status_code == 201
    endpoint = await create_endpoint(api, receiver.url("/hook"))
    receiver.trust(endpoint["secret"])


async def buy_until_done(
    api: Api, account: str, seats: int, key: str, seen: Seen, give_up: float
) -> None:
    """One purchase (the plan raised to ``seats``), retried with its key on every "try again
    later" until it answers."""
    seen.unresolved.add(key)
    while True:
        r = await api.buy(seats, account, key=key)
        seen.record(f"purchase {key}", r)
        seen.last[key] = f"{r.status_code} {r.text[:200]}"
        if r.status_code == 201:
            seen.paid[key] = r.json()["invoice"]["id"]
            seen.unresolved.discard(key)
            return
        if r.status_code not in (409, 503):
            seen.broken.append(f"purchase {key}: {r.status_code} {r.text[:300]}")
            return
        if time.monotonic() > give_up:
            return  # still unresolved: the test's assertion says so
        await asyncio.sleep(0.1)


async def buyer(api: Api, account: str, seen: Seen, stop: asyncio.Event, give_up: float) -> None:
    seats = 0
    while not stop.is_set():
        seats += 1
        await buy_until_done(api, account, seats, uuid.uuid4().hex, seen, give_up)


async def assigner(api: Api, seen: Seen, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for r in (await api.assign("dave", CHECKED), await api.unassign("dave", CHECKED)):
            seen.record("assign", r)
        await asyncio.sleep(0.02)


async def checker(clients: list[Pinned], seen: Seen, stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {user_token(CHECKED, 'carol')}"}
    while not stop.is_set():
        for pinned in clients:
            seen.record("check", await pinned.request("GET", CHECK, headers=headers))
        await asyncio.sleep(0.02)


async def until(
    what: str, condition: Any, deadline: float, why: Callable[[], Any] = lambda: ""
) -> float:
    """Wait for the async ``condition`` until ``deadline`` (monotonic); the time it held."""
    while not await condition():
        assert time.monotonic() < deadline, f"{what}: not within {FOLLOW_SECONDS} s {why()}"
        await asyncio.sleep(0.05)
    return time.monotonic()


@pytest.mark.parametrize("order", ["primary_first", "standby_first"])
async def test_the_service_follows_a_promoted_standby_within_15_s_and_loses_nothing(
    order: str,
) -> None:
    with (
        Primary() as primary,
        PaymentsServer() as payments,
        Receiver() as receiver,
    ):
        primary.psql(f"CREATE DATABASE {DATABASE}", primary.url())
        await asyncio.to_thread(migrate, make_settings(primary.url(DATABASE)))
        with Standby(primary.url(DATABASE)) as standby:
            primary.replicate_synchronously()
            hosts = [primary.url(DATABASE), standby.url()]
            url = multi_host_url(hosts if order == "primary_first" else hosts[::-1])
            env = {**SERVICE_ENV, "SEATS_PAYMENTS_URL": payments.url}
            server = LiveServer(url, workers=2, args=("--no-migrate",), **env)
            webhooks = WorkerProcess(url, **env)
            try:
                server.start()
                webhooks.start()
                await run_failover(server, webhooks, primary, standby, payments, receiver, url)
            except BaseException:
                print(server.stderr_text()[-3000:], webhooks.output()[-2000:])
                raise
            finally:
                server.__exit__(None, None, None)
                webhooks.stop()


async def run_failover(
    server: LiveServer,
    webhooks: WorkerProcess,
    primary: Primary,
    standby: Standby,
    payments: PaymentsServer,
    receiver: Receiver,
    url: str,
) -> None:
    new_primary = standby.url()
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
        api = Api(client)
        await seed(api, receiver)
        carol = user_token(CHECKED, "carol")
        clients = await pin_to_every_worker(server, lambda: Pinned(server.url, CHECK, carol))
        seen = Seen()
        stop = asyncio.Event()
        give_up = time.monotonic() + 60
        load = [
            *(asyncio.create_task(buyer(api, a, seen, stop, give_up)) for a in BUYERS),
            asyncio.create_task(assigner(api, seen, stop)),
            asyncio.create_task(checker(clients, seen, stop)),
        ]
        try:
            # The load runs until every buyer has been paid once, so the failover meets a load
            # that works.
            warm = time.monotonic() + 30
            while len(seen.paid) < len(BUYERS):
                assert time.monotonic() < warm, f"purchases do not go through: {seen}"
                await asyncio.sleep(0.05)
            # The next charge is held at the payments server: its purchase has committed its
            # pending invoice and attempt, and will find no database to record the answer in.
            payments.hang_seconds = HELD_SECONDS
            sent = payments.requests
            payments.fail_next(1, "timeout_after_charge")
            waiting = time.monotonic() + 10
            while payments.requests == sent:
                assert time.monotonic() < waiting, f"no charge was sent: {seen}"
                await asyncio.sleep(0.005)
            held = payments.received[sent]
            primary.kill()
            await asyncio.sleep(OUTAGE_SECONDS)
            standby.promote()
            promoted = time.monotonic()
            deadline = promoted + FOLLOW_SECONDS

            async def every_worker_writes() -> bool:
                for i, pinned in enumerate(clients):
                    r = await pinned.request(
                        "PUT",
                        f"/internal/v1/accounts/{CHECKED}/users/w{i}",
                        json={"email": f"w{i}@checked.test", "name": "W", "role": "user"},
                        headers=api.as_service(),
                    )
                    seen.record("worker write", r)
                    if r.status_code not in (200, 201):
                        return False
                return True

            async def every_listener_listens() -> bool:
                found = await rows(
                    new_primary,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seats-access'",
                )
                return bool(found[0][0] == 2)

            writes = await until(
                "every worker writes on the new primary", every_worker_writes, deadline
            )
            listens = await until("every listener listens on it", every_listener_listens, deadline)
            # An event made after the promotion: carol's first assignment.
            r = await api.assign("carol", CHECKED)
            assert r.status_code == 201, r.text

            async def marker_delivered() -> bool:
                return any(
                    d.json()["type"] == "agent.assigned" and b'"carol"' in d.body
                    for d in receiver.deliveries
                )

            delivers = await until("the webhook worker delivers", marker_delivered, deadline)

            async def every_purchase_answered() -> bool:
                return not seen.unresolved

            stop.set()
            answered = await until(
                "every purchase key answers 201",
                every_purchase_answered,
                deadline,
                lambda: {key: seen.last.get(key) for key in seen.unresolved},
            )
            # The figures of the run (pytest -s shows them).
            print(
                f"after the promotion: every worker writes {writes - promoted:.2f} s, "
                f"every listener listens {listens - promoted:.2f} s, a new event delivered "
                f"{delivers - promoted:.2f} s, every purchase key answered "
                f"{answered - promoted:.2f} s; answers {dict(seen.statuses)}"
            )
        finally:
            stop.set()
            await asyncio.gather(*load, return_exceptions=True)
        for task in load:
            assert task.exception() is None, task.exception()
        assert not seen.broken, seen.broken
        assert seen.statuses[503] > 0, f"no request was caught by the failover: {seen.statuses}"
        assert not seen.unresolved

        # Nothing committed is lost, and no key was charged twice.
        held_key = held.headers["idempotency-key"]
        assert held_key in seen.paid.values(), "the cut-off purchase never answered 201"
        paid = {
            row["id"]: (row["charge_id"], row["total"])
            for row in await rows(
                new_primary, "SELECT id, charge_id, total FROM invoice WHERE status = 'paid'"
            )
        }
        assert set(seen.paid.values()) <= set(paid), "a purchase that answered 201 was lost"
        captured = {c["id"]: c["amount"] for c in payments.captured}
        assert captured == {charge: total for charge, total in paid.values() if total > 0}
        keys = Counter(c["idempotency_key"] for c in payments.charges)
        assert max(keys.values()) == 1, keys

        # Every worker's cache serves again, and hears a revocation within 100 ms.
        await asyncio.sleep(0.3)  # the load's own notifications still on their way
        assert {await pinned.check() for pinned in clients} == {(True, True)}
        conn = await asyncpg.connect(new_primary.replace("+asyncpg", ""))
        try:

            async def sql(query: str) -> None:
                await conn.execute(query)

            await unannounced(
                sql, f"UPDATE plan SET status = 'canceled' WHERE account_id = '{CHECKED}'"
            )
            assert {await p.check() for p in clients} == {(True, True)}, (
                "a worker reads the database"
            )
            await unannounced(
                sql, f"UPDATE plan SET status = 'trialing' WHERE account_id = '{CHECKED}'"
            )
        finally:
            await conn.close()
        assert (await api.unassign("bob", CHECKED)).status_code == 204
        await asyncio.sleep(REVOCATION_DEADLINE)
        assert {await pinned.check() for pinned in clients} == {(False, False)}
        await close_all(clients)

    env = {**SERVICE_ENV, "SEATS_PAYMENTS_URL": payments.url}
    done = run_seats("billing", "run", database_url=url, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_seats("verify", database_url=url, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert server.running() and webhooks.proc is not None and webhooks.proc.poll() is None
