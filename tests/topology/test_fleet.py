"""Every feature through the production topology: two instances of two workers behind PgBouncer
in transaction pooling mode (SPEC §7, "Production topology": Pooler, Listener, Connections).

No request may answer 500 for the topology's sake; races are checked in SQL afterwards and by
``seats verify`` through the pooler; a revocation reaches every worker of both instances within
the 100 ms contract.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import NOW, Api, problem, user_token
from tests.entitlements.helpers import unannounced
from tests.entitlements.test_workers import REVOCATION_DEADLINE
from tests.live import LiveServer
from tests.pinned import Pinned, close_all, pin_to_every_worker
from tests.races.conftest import statuses
from tests.topology.conftest import (
    APP,
    OWNER,
    SMALL,
    SMALL_LIMIT,
    Fleet,
    FleetBouncer,
    direct_url,
    fleet_env,
)
from tests.webhooks.conftest import WorkerProcess, create_endpoint
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.server]


def no_server_errors(fleet: Fleet, responses: list[httpx.Response]) -> None:
    failed = [(r.url.port, r.status_code, r.text[:300]) for r in responses if r.status_code >= 500]
    assert not failed, f"{failed}\n{fleet.logs()}"


def assert_verified(fleet: Fleet) -> None:
    """``seats verify`` as the runtime role, through the pooler: every invariant holds."""
    done = fleet.seats("verify")
    assert done.returncode == 0, done.stdout + done.stderr


async def seed_account(api: Api, account_id: str, users: int = 0) -> list[str]:
    """``account_id`` with alice its primary admin, bob an admin, and ``users`` users."""
    assert (await api.put_account(account_id)).status_code == 201
    for user_id, role in (("alice", "primary_admin"), ("bob", "admin")):
        assert (await api.put_user(account_id, user_id, role)).status_code == 201
    return await api.add_users(users, account_id)


# --------------------------------------------------------------------------- the walkthrough


async def test_the_readme_walkthrough_answers_every_step_through_the_pooler(
    fleet: Fleet, apis: tuple[Api, Api]
) -> None:
    """The README's curl walkthrough, its steps taken in turn by each instance."""
    svc = apis[0].as_service()
    alice, bob = apis[0].as_user("acme", "alice"), apis[0].as_user("acme", "bob")
    a = "/v1/accounts/acme/conversations"
    steps: list[tuple[str, str, dict[str, str], Any, int]] = [
        (
            "PUT",
            "/internal/v1/accounts/acme",
            svc,
            {
                "name": "Acme",
                "billing_cycle": "monthly",
                "billing_anchor": "2026-11-01",
                "payment_method": "pm_card_visa",
            },
            201,
        ),
        (
            "PUT",
            "/internal/v1/accounts/acme/users/alice",
            svc,
            {"email": "alice@acme.test", "name": "Alice", "role": "primary_admin"},
            201,
        ),
        (
            "PUT",
            "/internal/v1/accounts/acme/users/bob",
            svc,
            {"email": "bob@acme.test", "name": "Bob", "role": "user"},
            201,
        ),
        ("POST", f"{a}/trial", alice, None, 201),
        ("PUT", f"{a}/agents/bob", alice, None, 201),
        ("GET", f"{a}/agents/bob", bob, None, 200),
        ("POST", f"{a}/quotes", alice, {"seats": 25}, 201),
        (
            "POST",
            f"{a}/purchases",
            {**alice, "Idempotency-Key": uuid.uuid4().hex},
            {"seats": 25},
            201,
        ),
        ("GET", f"{a}/invoices", alice, None, 200),
        ("GET", f"{a}/events", alice, None, 200),
        ("POST", "/internal/v1/billing/run", svc, None, 200),
    ]
    answered = []
    for i, (method, path, headers, body, expected) in enumerate(steps):
        r = await apis[i % 2].client.request(method, path, json=body, headers=headers)
        answered.append((method, path, r.status_code, expected, r.text[:200]))
    wrong = [step for step in answered if step[2] != step[3]]
    assert not wrong, f"{wrong}\n{fleet.logs()}"
    # Every read, again on each instance: the same answers whichever instance serves them.
    for path, headers in ((f"{a}/agents/bob", bob), (a, alice), (f"{a}/invoices", alice)):
        one, other = [await api.client.get(path, headers=headers) for api in apis]
        assert (one.status_code, other.status_code) == (200, 200), (one.text, other.text)
        assert one.json() == other.json()
    assert_verified(fleet)


# --------------------------------------------------------------------------- races


async def test_concurrent_assigns_across_both_instances_never_exceed_the_seats(
    fleet: Fleet, apis: tuple[Api, Api], sql: Any
) -> None:
    users = await seed_account(apis[0], "fullplan", users=40)
    assert (await apis[0].start_trial("fullplan")).status_code == 201  # 20 seats

    responses = await asyncio.gather(
        *(apis[i % 2].assign(u, "fullplan", user="bob") for i, u in enumerate(users))
    )

    no_server_errors(fleet, list(responses))
    counts = statuses(list(responses))
    assert counts == {(201, None): 20, (409, "no_empty_seat"): 20}, counts
    [(assigned, seats)] = await sql(
        "SELECT assigned, seats FROM plan WHERE account_id = 'fullplan'"
    )
    [(rows,)] = await sql("SELECT count(*) FROM assignment WHERE account_id = 'fullplan'")
    assert (assigned, seats, rows) == (20, 20, 20)
    assert_verified(fleet)


async def test_purchases_with_one_key_across_both_instances_charge_once(
    fleet: Fleet, apis: tuple[Api, Api], sql: Any
) -> None:
    await seed_account(apis[0], "onekey")
    assert (await apis[0].start_trial("onekey")).status_code == 201
    key = uuid.uuid4().hex
    charges_before = len(fleet.payments.charges)

    responses = await asyncio.gather(*(apis[i % 2].buy(30, "onekey", key=key) for i in range(20)))

    no_server_errors(fleet, list(responses))
    counts = statuses(list(responses))
    assert set(counts) <= {(201, None), (409, "idempotency_key_in_use")}, counts
    created = [r.json() for r in responses if r.status_code == 201]
    assert created and len({c["invoice"]["id"] for c in created}) == 1
    for api in apis:  # the key replays the purchase on either instance
        final = await api.buy(30, "onekey", key=key)
        assert final.status_code == 201 and final.headers["idempotent-replayed"] == "true"
        assert final.json() == created[0]
    invoices = await sql("SELECT id, status, total FROM invoice WHERE account_id = 'onekey'")
    assert [(i["status"]) for i in invoices] == ["paid"]
    charges = fleet.payments.charges[charges_before:]
    assert [c["idempotency_key"] for c in charges] == [invoices[0]["id"]]
    assert charges[0]["amount"] == invoices[0]["total"]
    assert_verified(fleet)


# --------------------------------------------------------------------------- revocation

CHECK = "/v1/accounts/revoke/conversations/agents/bob"


async def answers(clients: list[Pinned]) -> set[tuple[bool, bool]]:
    return {await pinned.check() for pinned in clients}


async def test_a_revocation_reaches_every_worker_of_both_instances_within_100_ms(
    fleet: Fleet, apis: tuple[Api, Api], sql: Any
) -> None:
    api = apis[0]
    assert (await api.put_account("revoke")).status_code == 201
    for user_id, role in (("alice", "primary_admin"), ("carol", "user"), ("bob", "user")):
        assert (await api.put_user("revoke", user_id, role)).status_code == 201
    assert (await api.start_trial("revoke")).status_code == 201
    assert (await api.assign("bob", "revoke")).status_code == 201
    carol = user_token("revoke", "carol")
    clients: list[Pinned] = []
    try:
        for server in fleet.instances:  # a client on every worker of each instance
            clients += await pin_to_every_worker(
                server, lambda s=server: Pinned(s.url, CHECK, carol), per_worker=1
            )
        assert len({pinned.worker for pinned in clients}) == 4
        await asyncio.sleep(0.3)  # the seeding's own notifications, still on their way
        assert await answers(clients) == {(True, True)}  # every worker has it cached now
        # A change that announces nothing goes unseen: every worker answers from its cache,
        # which is what gives the revocation below its meaning.
        await unannounced(sql, "UPDATE plan SET status = 'canceled' WHERE account_id = 'revoke'")
        assert await answers(clients) == {(True, True)}, "some worker did not answer from its cache"
        await unannounced(sql, "UPDATE plan SET status = 'trialing' WHERE account_id = 'revoke'")

        assert (await apis[1].unassign("bob", "revoke")).status_code == 204
        await asyncio.sleep(REVOCATION_DEADLINE)
        assert await answers(clients) == {(False, False)}
    finally:
        await close_all(clients)
    assert_verified(fleet)


# --------------------------------------------------------------------------- billing, webhooks


async def delivered(receiver: Receiver, account_id: str, event_type: str) -> None:
    """Wait until the receiver got ``account_id``'s event of ``event_type``."""
    deadline = asyncio.get_running_loop().time() + 30
    while not any(
        (d.json()["account_id"], d.json()["type"]) == (account_id, event_type)
        for d in receiver.deliveries
    ):
        seen = [d.json()["type"] for d in receiver.deliveries]
        assert asyncio.get_running_loop().time() < deadline, f"no {event_type}: {seen}"
        await asyncio.sleep(0.05)


async def test_the_webhook_worker_and_the_billing_run_work_through_the_pooler(
    fleet: Fleet, apis: tuple[Api, Api]
) -> None:
    api = apis[0]
    with Receiver() as receiver:
        ep = await create_endpoint(api, receiver.url("/fleet"))
        receiver.trust(ep["secret"])
        worker = WorkerProcess(fleet.pooled_url, **fleet.env).start()
        try:
            await seed_account(api, "hooks", users=1)
            assert (await apis[1].start_trial("hooks")).status_code == 201
            assert (await api.assign("u0", "hooks")).status_code == 201
            for event_type in ("trial.started", "agent.assigned"):
                await delivered(receiver, "hooks", event_type)

            # The trial ends: `seats billing run` (cron's command) expires it, and a second run
            # finds nothing left to do; both through the pooler, both exit 0.
            await api.set_clock(NOW + timedelta(days=15))
            try:
                first = fleet.seats("billing", "run")
                assert first.returncode == 0, first.stdout + first.stderr
                assert json.loads(first.stdout)["trials_expired"] >= 1
                second = fleet.seats("billing", "run")
                assert second.returncode == 0, second.stdout + second.stderr
                report = json.loads(second.stdout)
                assert report["trials_expired"] == 0 and not report["errors"], report
                # The expiry is an event like any other: the worker sends it.
                await delivered(receiver, "hooks", "trial.expired")
            finally:
                await api.set_clock(NOW)
        finally:
            if worker.proc is not None and worker.proc.poll() is not None:
                print(worker.output())
            worker.stop()
        assert all(d.verified_by == {ep["secret"]} for d in receiver.deliveries)
    assert_verified(fleet)


# --------------------------------------------------------------------------- the commands


def test_seats_migrate_twice_then_verify_through_the_pooler(fleet: Fleet) -> None:
    for attempt in (1, 2):
        done = fleet.seats("migrate", user=OWNER, SEATS_DATABASE_APP_ROLE=APP)
        assert done.returncode == 0, f"run {attempt}: {done.stdout}{done.stderr}"
    assert_verified(fleet)
    for server in fleet.instances:  # still at head, still serving
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200


# --------------------------------------------------------------------------- out of connections


@pytest.fixture(params=["direct", "pooler"])
def starved(request: pytest.FixtureRequest, fleet: Fleet) -> Iterator[LiveServer]:
    """One instance of two workers whose database role may open ``SMALL_LIMIT`` connections,
    each worker's pool wanting more: straight to PostgreSQL (its ``too many connections``),
    or through a PgBouncer with a small ``max_client_conn`` whose server logins are refused
    past the limit and whose clients wait at most a second for a server."""
    env = {
        **fleet_env(fleet.payments),
        "SEATS_DATABASE_POOL_SIZE": "8",
        "SEATS_ACCESS_CACHE": "0",  # every agent check needs a connection
    }
    if request.param == "direct":
        with LiveServer(direct_url(SMALL), workers=2, args=("--no-migrate",), **env) as server:
            yield server
        return
    with (
        FleetBouncer(
            direct_url(SMALL),
            (SMALL,),
            max_client_conn=6,
            default_pool_size=2 * SMALL_LIMIT,
            query_wait_timeout=1,
        ) as bouncer,
        LiveServer(bouncer.url_as(SMALL), workers=2, args=("--no-migrate",), **env) as server,
    ):
        yield server


async def test_running_out_of_connections_answers_503_with_retry_after_never_500(
    fleet: Fleet, starved: LiveServer, apis: tuple[Api, Api], sql: Any
) -> None:
    account = f"starved{uuid.uuid4().hex[:8]}"
    users = await seed_account(apis[0], account, users=20)
    assert (await apis[0].start_trial(account)).status_code == 201
    limits = httpx.Limits(max_connections=60, max_keepalive_connections=60)
    async with httpx.AsyncClient(base_url=starved.url, limits=limits, timeout=60) as client:
        api = Api(client)
        reads = [
            *(api.call("GET", account, f"/agents/{u}", user=u) for u in users),
            *(api.call("GET", account, user="alice") for _ in range(20)),
            *(api.call("GET", account, "/agents", user="bob") for _ in range(20)),
        ]
        writes = [api.assign(u, account, user="bob") for u in users]
        responses = list(await asyncio.gather(*reads, *writes))  # a bounded burst: 80 requests

    counts = Counter(r.status_code for r in responses)
    wrong = [r.text[:300] for r in responses if r.status_code not in (200, 201, 503)]
    assert set(counts) <= {200, 201, 503}, f"{counts} {wrong[:5]}\n{starved.stderr_text()[-4000:]}"
    for r in responses:
        if r.status_code == 503:
            problem(r, 503, "service_unavailable")
            assert int(r.headers["retry-after"]) >= 1, r.headers
    # Whatever was refused was refused whole: the plan counts exactly the assignments made.
    [(assigned,)] = await sql("SELECT assigned FROM plan WHERE account_id = $1", account)
    [(rows,)] = await sql("SELECT count(*) FROM assignment WHERE account_id = $1", account)
    assert assigned == rows == sum(1 for r in responses[-len(users) :] if r.status_code == 201)
    print(f"burst of {len(responses)} on a role limited to {SMALL_LIMIT} connections: {counts}")
    assert_verified(fleet)
