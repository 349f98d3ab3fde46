"""Reads on a standby are never stale (SPEC §7, Production topology: Replicas).

The standby here applies every commit two seconds late (``recovery_min_apply_delay``), so any read
that reaches it within two seconds of a change sees the old answer. ``seats serve --workers
2`` reads it (SEATS_DATABASE_READ_URL), and clients are pinned to each worker (one keep-alive
connection each, found in /proc). Every change below is followed at once by reads on every
worker: each must see the change, whether it came from the primary, from the cache, or from
the standby; and after the standby caught up, fresh cache misses show it does answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import Api, make_settings, postgres_only, service_token, user_token
from tests.entitlements.helpers import unannounced
from tests.live import LiveServer
from tests.pinned import Pinned, close_all, pin_to_every_worker, seed_an_agent
from tests.races.conftest import assert_invariants
from tests.standby import Standby

pytestmark = postgres_only

APPLY_DELAY_MS = 2000
CHECK = "/v1/accounts/acme/conversations/agents/bob"
# Long enough for a notification to reach every worker (the cache's contract is 100 ms) on a
# busy machine, far shorter than the standby's delay: the reads that follow are misses while
# the standby still shows the old answer.
NOTICE = 0.25
CYCLES = 12


@pytest.fixture(scope="module")
def standby(migrated_template: str) -> Iterator[Standby]:
    with Standby(
        migrated_template, settings={"recovery_min_apply_delay": f"{APPLY_DELAY_MS}ms"}
    ) as server:
        yield server


@pytest.fixture(scope="module")
def server(migrated_template: str, standby: Standby) -> Iterator[LiveServer]:
    with LiveServer(migrated_template, workers=2, SEATS_DATABASE_READ_URL=standby.url()) as live:
        yield live


class Reader(Pinned):
    """A pinned client that also reads and writes as anyone, carrying read positions."""

    async def call(
        self, method: str, path: str, token: str, *, json: Any = None, position: str | None = None
    ) -> httpx.Response:
        """One request; ``position`` is sent as ``Seats-Read-Position`` (what a client echoes
        of a write's answer). No cookies are kept: each read says what it needs."""
        headers = {"Authorization": f"Bearer {token}"}
        if position is not None:
            headers["Seats-Read-Position"] = position
        r = await self.request(method, path, headers=headers, json=json)
        self.client.cookies.clear()
        return r

    async def get(self, path: str, token: str, position: str | None = None) -> Any:
        r = await self.call("GET", path, token, position=position)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
async def pinned(server: LiveServer, database_url: str) -> AsyncIterator[tuple[Api, list[Reader]]]:
    """acme on its trial with bob an agent, and two clients on each of the two workers."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        api = Api(client)
        await seed_an_agent(api)
        # The standby has the seeding (only what follows is a test).
        await asyncio.sleep(APPLY_DELAY_MS / 1000 + 0.3)
        carol = user_token("acme", "carol")
        clients = await pin_to_every_worker(server, lambda: Reader(server.url, CHECK, carol))
        try:
            yield api, clients
        finally:
            await close_all(clients)


async def standby_sessions(standby: Standby) -> int:
    engine = create_async_engine(standby.url())
    try:
        async with engine.connect() as conn:
            found = await conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seats'"
            )
            return int(found.scalar_one())
    finally:
        await engine.dispose()


async def test_no_worker_answers_the_agent_check_stale_after_a_revocation(
    pinned: tuple[Api, list[Reader]], standby: Standby, database_url: str
) -> None:
    api, clients = pinned
    carol = user_token("acme", "carol")
    stale: list[str] = []
    for cycle in range(CYCLES):
        for change, expected in (("unassign", (False, False)), ("assign", (True, True))):
            r = await getattr(api, change)("bob")
            assert r.status_code in (201, 204), r.text
            await asyncio.sleep(NOTICE)
            # The cache was emptied by the notification: these are misses, and the standby
            # has not applied the change yet.
            for one in clients:
                if (seen := await one.check(carol)) != expected:
                    stale.append(f"cycle {cycle}, after {change}: {seen} on port {one.port}")
    assert not stale, f"{len(stale)} stale answers: {stale[:5]}"

    # Once the standby has caught up, misses (a caller each worker never cached) read it.
    await asyncio.sleep(APPLY_DELAY_MS / 1000 + 0.5)
    for n, one in enumerate(clients):
        assert await one.check(service_token(f"inbox-{n}")) == (True, True)
    assert await standby_sessions(standby) >= 1, "no worker ever read the standby"
    await assert_invariants(make_settings(database_url))


async def test_a_caller_reads_its_own_writes_on_every_worker(
    pinned: tuple[Api, list[Reader]], database_url: str
) -> None:
    """Users created (no notification) and seats assigned, each followed at once by the
    lists: on the same worker with nothing carried, on the other worker with the position the
    write answered."""
    _, clients = pinned
    alice, platform = user_token("acme", "alice"), service_token()
    base = "/v1/accounts/acme/conversations"
    stale: list[str] = []
    for cycle in range(CYCLES):
        writer = clients[cycle % len(clients)]
        other = next(c for c in clients if c.worker != writer.worker)
        user_id = f"user{cycle}"
        created = await writer.call(
            "PUT",
            f"/internal/v1/accounts/acme/users/{user_id}",
            platform,
            json={"email": f"{user_id}@acme.test", "name": user_id, "role": "user"},
        )
        assert created.status_code == 201, created.text
        # A new user announces nothing: only the position of the write makes it visible.
        for reader, carried in ((writer, None), (other, created.headers["Seats-Read-Position"])):
            users = await reader.get(f"{base}/users?limit=100", platform, carried)
            if user_id not in {u["user_id"] for u in users["data"]}:
                stale.append(f"cycle {cycle}: new user on worker {reader.worker}")
        assigned = await writer.call("PUT", f"{base}/agents/{user_id}", alice)
        assert assigned.status_code == 201, assigned.text
        position = assigned.headers["Seats-Read-Position"]
        for reader, carried in ((writer, None), (other, position)):
            users = await reader.get(f"{base}/users?limit=100", alice, carried)
            agents = await reader.get(f"{base}/agents?limit=100", alice, carried)
            summary = await reader.get(base, alice, carried)
            if user_id not in {u["user_id"] for u in users["data"] if u["agent"]}:
                stale.append(f"cycle {cycle}: users on worker {reader.worker}")
            if user_id not in {a["user_id"] for a in agents["data"]}:
                stale.append(f"cycle {cycle}: agents on worker {reader.worker}")
            if summary["assigned"] != cycle + 2:  # bob, and one more each cycle
                stale.append(f"cycle {cycle}: summary on worker {reader.worker}")
    assert not stale, f"{len(stale)} stale answers: {stale[:5]}"
    await assert_invariants(make_settings(database_url))


async def test_a_listener_that_listens_again_lets_no_standby_answer_from_before(
    pinned: tuple[Api, list[Reader]], sql: Any, database_url: str
) -> None:
    """A change whose notification no worker got (made unannounced here, as one lost while
    the listeners were down): once they listen again, the position at that moment is every
    account's floor, so the standby, still behind it, does not answer."""
    _, clients = pinned
    carol = user_token("acme", "carol")
    await unannounced(sql, "UPDATE plan SET status = 'canceled' WHERE account_id = 'acme'")
    listeners = "SELECT pid FROM pg_stat_activity WHERE application_name = 'seats-access'"
    old = {pid for (pid,) in await sql(listeners)}
    assert len(old) == 2  # one listener per worker
    await sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'seats-access'"
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + APPLY_DELAY_MS / 1000

    async def listening_again() -> bool:
        # New backends, and every worker's listener proved it listens (the gauge is the
        # lowest of the workers').
        new = {pid for (pid,) in await sql(listeners)}
        if len(new) < 2 or new & old:
            return False
        metrics = (await clients[0].client.get("/metrics")).text
        return "\nseats_access_cache_listening 1.0" in metrics

    while not await listening_again():
        assert loop.time() < deadline, "the listeners did not come back before the standby"
        await asyncio.sleep(0.02)
    answers = {await one.check(carol) for one in clients}
    assert loop.time() < deadline, "too slow to tell: the standby may have caught up"
    assert answers == {(True, False)}
    await assert_invariants(make_settings(database_url))
