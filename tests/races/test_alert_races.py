"""R16 under concurrency, against the real server with 2 worker processes: the alerts of
concurrent assignments are decided under the plan's lock, so each is written once.

Checked in SQL afterwards, and with ``seats verify``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from app.config import Settings
from tests.conftest import PG_URL, Api
from tests.races.conftest import assert_invariants, statuses

pytestmark = pytest.mark.skipif(not PG_URL, reason="race tests need PostgreSQL")

CLIENTS = 40


async def test_r16_seats_exhausted_at_most_once_per_account_per_hour_under_concurrent_refusals(
    live: Api, live_settings: Settings, sql: Callable[..., Any]
) -> None:
    assert (await live.buy(2)).status_code == 201
    users = await live.add_users(CLIENTS + 2)
    for user_id in users[:2]:
        assert (await live.assign(user_id)).status_code == 201

    responses = await asyncio.gather(*(live.assign(u, user="bob") for u in users[2:]))

    assert statuses(list(responses)) == {(409, "no_empty_seat"): CLIENTS}
    [(count,)] = await sql("SELECT COUNT(*) FROM event WHERE type = 'seats.exhausted'")
    assert count == 1
    [(assigned, seats)] = await sql("SELECT assigned, seats FROM plan WHERE account_id = 'acme'")
    assert (assigned, seats) == (2, 2)
    await assert_invariants(live_settings)


async def test_r16_threshold_reached_once_per_crossing_under_concurrent_assignments(
    live: Api, live_settings: Settings, sql: Callable[..., Any]
) -> None:
    assert (await live.start_trial()).status_code == 201  # 20 seats
    users = await live.add_users(CLIENTS)

    responses = await asyncio.gather(*(live.assign(u, user="bob") for u in users))

    counts = statuses(list(responses))
    assert counts == {(201, None): 20, (409, "no_empty_seat"): CLIENTS - 20}, counts
    reached = await sql(
        "SELECT CAST(data->>'threshold' AS INT), CAST(data->>'assigned' AS INT), "
        "CAST(data->>'seats' AS INT) FROM event WHERE type = 'seats.threshold_reached'"
    )
    assert sorted(tuple(row) for row in reached) == [(80, 16, 20), (100, 20, 20)]
    [(count,)] = await sql("SELECT COUNT(*) FROM event WHERE type = 'seats.exhausted'")
    assert count == 1
    await assert_invariants(live_settings)
