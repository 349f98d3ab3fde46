"""R17: who may act is read in the same transaction as the change, after the plan's lock.

A real lock, held from a connection of the test's own (``SELECT ... FOR UPDATE`` on the plan
row, as any request or billing run holds it), makes the request wait; meanwhile the platform
changes the caller's role through the internal API, which does not wait for the plan; then the
lock is released. The request must be judged by the role of that moment, not the one it saw
before it waited: refused, and nothing written (no invoice, no event, no seat).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from app.config import Settings
from tests.conftest import Api, pg_dsn, postgres_only, problem
from tests.races.conftest import assert_invariants

pytestmark = postgres_only

Sql = Callable[..., Any]


async def demoted_while_waiting(
    api: Api, request: Awaitable[httpx.Response], demote: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response:
    """Run ``request`` while the plan is locked elsewhere; ``demote`` once it waits; release."""
    blocker = await asyncpg.connect(pg_dsn())
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM plan WHERE account_id = 'acme' FOR UPDATE")
        task = asyncio.ensure_future(request)
        waiting = None
        for _ in range(400):  # the request's transaction now waits for our lock
            waiting = await blocker.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'seats' "
                "AND wait_event_type = 'Lock'"
            )
            if waiting or task.done():
                break
            await asyncio.sleep(0.05)
        assert waiting, "the request never waited for the plan lock"
        # The directory change does not wait for the plan: it commits while the request waits.
        changed = await demote()
        assert changed.status_code == 200, changed.text
        await tx.rollback()
        return await task
    finally:
        await blocker.close()


async def events_of(sql: Sql, type: str) -> int:
    [(count,)] = await sql("SELECT COUNT(*) FROM event WHERE type = :type", type=type)
    return int(count)


async def test_r17_a_purchase_by_a_primary_admin_demoted_while_it_waits_is_refused(
    api: Api, sql: Sql, settings: Settings
) -> None:
    response = await demoted_while_waiting(
        api, api.buy(5), lambda: api.put_user("acme", "bob", "primary_admin")
    )

    problem(response, 403, "not_primary_admin")
    assert await sql("SELECT id FROM invoice") == []
    assert await events_of(sql, "seats.purchased") == 0
    [(status, seats)] = await sql("SELECT status, seats FROM plan WHERE account_id = 'acme'")
    assert (status, seats) == ("none", 0)
    # The new primary admin buys as usual: nothing was left pending or locked.
    assert (await api.buy(5, user="bob")).status_code == 201
    await assert_invariants(settings)


async def test_r17_a_removal_by_a_primary_admin_demoted_while_it_waits_is_refused(
    api: Api, sql: Sql, settings: Settings
) -> None:
    assert (await api.buy(10)).status_code == 201

    response = await demoted_while_waiting(
        api, api.remove(5), lambda: api.put_user("acme", "bob", "primary_admin")
    )

    problem(response, 403, "not_primary_admin")
    assert await events_of(sql, "seats.removed") == 0
    [(seats,)] = await sql("SELECT seats FROM plan WHERE account_id = 'acme'")
    assert seats == 10
    await assert_invariants(settings)


async def test_r17_a_trial_started_by_a_primary_admin_demoted_while_it_waits_is_refused(
    api: Api, sql: Sql, settings: Settings
) -> None:
    response = await demoted_while_waiting(
        api, api.start_trial(), lambda: api.put_user("acme", "bob", "primary_admin")
    )

    problem(response, 403, "not_primary_admin")
    assert await events_of(sql, "trial.started") == 0
    [(status, started)] = await sql(
        "SELECT status, trial_started_at FROM plan WHERE account_id = 'acme'"
    )
    assert (status, started) == ("none", None)
    await assert_invariants(settings)


@pytest.mark.parametrize("change", ["assign", "unassign"])
async def test_r17_an_agent_change_by_an_admin_demoted_while_it_waits_is_refused(
    api: Api, sql: Sql, settings: Settings, change: str
) -> None:
    assert (await api.start_trial()).status_code == 201
    if change == "unassign":
        assert (await api.assign("carol")).status_code == 201
    request = (
        api.assign("carol", user="bob") if change == "assign" else api.unassign("carol", user="bob")
    )
    before = await sql("SELECT user_id FROM assignment")

    response = await demoted_while_waiting(
        api, request, lambda: api.put_user("acme", "bob", "user")
    )

    problem(response, 403, "not_admin")
    assert await sql("SELECT user_id FROM assignment") == before
    assert await events_of(sql, f"agent.{change}ed") == 0
    await assert_invariants(settings)
