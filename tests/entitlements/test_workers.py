"""A revocation reaches every worker of ``seats serve --workers 2`` within 100 ms (issue 13).

Each client here keeps one connection, and each connection is served by one worker process:
the test finds which from /proc (the worker that holds the accepted socket), and keeps at
least one client on each worker. A change made with ``session_replication_role = replica``
fires no trigger and so announces nothing: that every client still gets the old answer then
shows every worker answers from its cache, which is what makes the revocation's test mean
something.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Api, make_settings, postgres_only, user_token
from tests.entitlements.helpers import unannounced
from tests.live import LiveServer
from tests.pinned import Pinned, close_all, pin_to_every_worker, seed_an_agent
from tests.races.conftest import assert_invariants

pytestmark = postgres_only

CHECK = "/v1/accounts/acme/conversations/agents/bob"
# The contract: a revocation is visible on every worker this long after it committed.
REVOCATION_DEADLINE = 0.1
PATIENCE = 5.0


@pytest.fixture(scope="module")
def server(migrated_template: str) -> Iterator[LiveServer]:
    with LiveServer(migrated_template, workers=2) as live:
        yield live


@pytest.fixture
async def pinned(server: LiveServer, database_url: str) -> AsyncIterator[tuple[Api, list[Pinned]]]:
    """acme on its trial with bob an agent, and clients kept on each of the two workers."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        api = Api(client)
        await seed_an_agent(api)
        token = user_token("acme", "carol")
        clients = await pin_to_every_worker(server, lambda: Pinned(server.url, CHECK, token))
        try:
            yield api, clients
        finally:
            await close_all(clients)


async def answers(clients: list[Pinned]) -> set[tuple[bool, bool]]:
    return {await pinned.check() for pinned in clients}


async def settle() -> None:
    # The seeding's own notifications still on their way would empty a cache just filled.
    await asyncio.sleep(0.3)


async def test_a_revocation_reaches_every_worker_within_100_ms(
    pinned: tuple[Api, list[Pinned]], sql: Any, database_url: str
) -> None:
    api, clients = pinned
    await settle()
    assert await answers(clients) == {(True, True)}  # every worker has it cached now
    await unannounced(sql, "UPDATE plan SET status = 'canceled' WHERE account_id = 'acme'")
    assert await answers(clients) == {(True, True)}, "some worker did not answer from its cache"
    await unannounced(sql, "UPDATE plan SET status = 'trialing' WHERE account_id = 'acme'")

    assert (await api.unassign("bob")).status_code == 204
    await asyncio.sleep(REVOCATION_DEADLINE)
    assert await answers(clients) == {(False, False)}
    await assert_invariants(make_settings(database_url))


async def test_a_worker_whose_listener_drops_answers_from_the_database(
    pinned: tuple[Api, list[Pinned]], sql: Any, database_url: str
) -> None:
    _, clients = pinned
    await settle()
    assert await answers(clients) == {(True, True)}
    await unannounced(sql, "UPDATE plan SET status = 'canceled' WHERE account_id = 'acme'")
    assert await answers(clients) == {(True, True)}
    (killed,) = await sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'seats-access'"
    )
    assert killed[0] == 2  # one listener per worker
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while (seen := await answers(clients)) != {(True, False)}:
        assert loop.time() < deadline, f"a worker kept serving its cache: {seen}"
        await asyncio.sleep(0.01)
    # The listeners reconnect, and the workers cache again: a change that announces nothing
    # goes unseen once more, and one that is announced reaches them.
    listeners = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seats-access'"
    while (await sql(listeners))[0][0] < 2:
        assert loop.time() < deadline + PATIENCE, "the listeners did not come back"
        await asyncio.sleep(0.05)
    await settle()
    assert await answers(clients) == {(True, False)}
    await unannounced(sql, "UPDATE plan SET status = 'trialing' WHERE account_id = 'acme'")
    assert await answers(clients) == {(True, False)}, "some worker did not cache again"
    await sql("UPDATE plan SET trial_ends_at = trial_ends_at + interval '1 day'")
    await asyncio.sleep(REVOCATION_DEADLINE)
    assert await answers(clients) == {(True, True)}
    await assert_invariants(make_settings(database_url))
