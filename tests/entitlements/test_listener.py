"""The agent check's cache against a real PostgreSQL: every change to access is announced by
the database itself and reaches the worker's cache; a read that raced one is not kept; a lost
listening connection flushes everything (issue 13, app/entitlements.py, migration 0007).

The app here is the in-process one with its listener started, as ``seats serve`` starts it.
A change made with ``session_replication_role = replica`` fires no trigger, so announces
nothing: the cache keeps answering what it holds, which shows these tests see the cache and
not the database.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.seats import repository
from tests.conftest import Api, postgres_only
from tests.entitlements.helpers import unannounced

pytestmark = postgres_only

CHECK = "/agents/bob"
# How long a test waits for a notification to arrive (it arrives in a few milliseconds).
PATIENCE = 5.0
PROBES = itertools.count()


@pytest.fixture
async def listening(app: Any) -> AsyncIterator[Any]:
    listener = app.state.access_listener
    listener.start()
    await asyncio.wait_for(listener.listening.wait(), PATIENCE)
    yield app
    await listener.stop()


@pytest.fixture
async def trial(api: Api, listening: Any, sql: Any) -> Api:
    """acme on its trial with bob an agent, and bob's check cached."""
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("bob")).status_code == 201
    await settled(listening, sql)
    assert await check(api) == (True, True)
    return api


async def settled(app: Any, sql: Any) -> None:
    """Wait until the cache has heard every change committed so far: PostgreSQL delivers
    notifications in commit order, so once a probe sent now arrives, the earlier ones have."""
    probe = f"probe-{next(PROBES)}"
    await sql(f"NOTIFY seats_access, '{probe}'")
    await until(lambda: app.state.entitlements.token(probe)[1] > 0)


async def check(api: Api, user: str = "carol") -> tuple[bool, bool]:
    r = await api.call("GET", "acme", CHECK, user=user)
    assert r.status_code == 200, r.text
    body = r.json()
    return body["agent"], body["active"]


def cached(app: Any, user: str = "carol") -> Any:
    return app.state.entitlements.get("acme", (False, user, "bob"))


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (a notification's effect), ``PATIENCE`` seconds at most."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not condition():
        assert loop.time() < deadline, "the cache never heard of the change"
        await asyncio.sleep(0.002)


async def test_an_answer_is_served_from_the_cache_until_a_change_is_announced(
    trial: Api, listening: Any, sql: Any
) -> None:
    assert cached(listening) is not None
    await unannounced(sql, "UPDATE plan SET status = 'canceled' WHERE account_id = 'acme'")
    assert await check(trial) == (True, True)  # cached: the database was not asked
    await sql("UPDATE plan SET status = 'trialing' WHERE account_id = 'acme'")  # no change...
    assert await check(trial) == (True, True)  # ...announces nothing: WHEN sees no difference
    await sql("UPDATE plan SET status = 'canceled' WHERE account_id = 'acme'")
    await until(lambda: cached(listening) is None)
    assert await check(trial) == (True, False)


@pytest.mark.parametrize(
    "change",
    [
        "unassign",
        "plan canceled",
        "trial end moved",
        "caller removed",
        "agent removed",
        "test clock set",
        "any tool's change",
    ],
)
async def test_every_change_to_access_reaches_the_cache(
    change: str, trial: Api, listening: Any, sql: Any
) -> None:
    assert cached(listening) is not None
    if change == "unassign":
        assert (await trial.unassign("bob")).status_code == 204
    elif change == "plan canceled":
        await sql("UPDATE plan SET status = 'canceled' WHERE account_id = 'acme'")
    elif change == "trial end moved":
        await sql("UPDATE plan SET trial_ends_at = '2026-11-21 11:00Z' WHERE account_id = 'acme'")
    elif change in ("caller removed", "agent removed"):
        user = "carol" if change == "caller removed" else "bob"
        r = await trial.client.delete(
            f"/internal/v1/accounts/acme/users/{user}", headers=trial.as_service()
        )
        assert r.status_code == 204, r.text
    elif change == "test clock set":
        r = await trial.client.put(
            "/internal/v1/test-clock",
            json={"now": "2026-12-30T00:00:00Z"},
            headers=trial.as_service(),
        )
        assert r.status_code == 200, r.text
    else:  # a seat freed by hand, as an operator's SQL would
        await sql("DELETE FROM assignment WHERE account_id = 'acme' AND user_id = 'bob'")
    await until(lambda: cached(listening) is None)
    expected: dict[str, Any] = {
        "unassign": (False, False),
        "plan canceled": (True, False),
        "trial end moved": (True, False),
        "test clock set": (True, False),  # past the trial's end
        "any tool's change": (False, False),
    }
    if change == "caller removed":
        r = await trial.call("GET", "acme", CHECK, user="carol")
        assert r.status_code == 403, r.text
    elif change == "agent removed":
        r = await trial.call("GET", "acme", CHECK, user="carol")
        assert r.status_code == 404, r.text
    else:
        assert await check(trial) == expected[change]


async def test_a_purchase_that_changes_no_access_keeps_the_cache(
    trial: Api, listening: Any, sql: Any
) -> None:
    # A trial's first purchase activates the plan: its status changed, so it is announced
    # (active grants access as trialing did). An active plan buying more changes its seats
    # only: nothing is announced, and the answer stays cached.
    assert (await trial.buy(25)).status_code == 201
    await until(lambda: cached(listening) is None)
    await settled(listening, sql)
    assert await check(trial) == (True, True)
    assert cached(listening) is not None
    assert (await trial.buy(30)).status_code == 201  # an active plan buying more
    await settled(listening, sql)
    assert cached(listening) is not None


async def test_a_read_that_raced_a_revocation_is_not_cached(
    trial: Api, listening: Any, sql: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = listening.state.entitlements
    cache.invalidate("acme")
    before = cache.token("acme")[1]
    read = repository.agent_check

    async def read_then_revoked(*args: Any, **kwargs: Any) -> Any:
        row = await read(*args, **kwargs)  # bob is an agent, as the database said then...
        # ...and his seat is freed before the answer is stored: the announcement arrives.
        await sql("DELETE FROM assignment WHERE account_id = 'acme' AND user_id = 'bob'")
        await until(lambda: cache.token("acme")[1] > before)
        return row

    monkeypatch.setattr(repository, "agent_check", read_then_revoked)
    assert await check(trial) == (True, True)  # the answer of its time...
    monkeypatch.setattr(repository, "agent_check", read)
    assert cached(listening) is None  # ...never kept
    assert await check(trial) == (False, False)


async def test_a_lost_listening_connection_flushes_the_cache_until_it_listens_again(
    trial: Api, listening: Any, sql: Any
) -> None:
    cache, listener = listening.state.entitlements, listening.state.access_listener
    await unannounced(sql, "UPDATE plan SET status = 'canceled' WHERE account_id = 'acme'")
    assert await check(trial) == (True, True)  # cached
    (killed,) = await sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'seats-access'"
    )
    assert killed[0] == 1
    await until(lambda: not cache.serving)
    assert len(cache) == 0
    assert await check(trial) == (True, False)  # from the database: nothing cached meanwhile
    assert cached(listening) is None
    await asyncio.wait_for(listener.listening.wait(), PATIENCE)
    assert await check(trial) == (True, False)
    assert cached(listening) is not None  # caching again
