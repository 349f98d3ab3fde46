"""Races against the real server with 2 worker processes and 50 concurrent clients.

Afterwards the outcome is checked in SQL (``seats verify`` and targeted queries), not only
through status codes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from app.config import Settings
from tests.conftest import Api
from tests.payments_server import PaymentsServer
from tests.races.conftest import assert_invariants, statuses

CLIENTS = 50


async def test_r5_concurrent_assigns_never_exceed_the_trial_seats(
    live: Api, live_settings: Settings, sql: Callable[..., Any]
) -> None:
    assert (await live.start_trial()).status_code == 201
    users = await live.add_users(CLIENTS)

    responses = await asyncio.gather(*(live.assign(u, user="bob") for u in users))

    counts = statuses(list(responses))
    assert counts == {(201, None): 20, (409, "no_empty_seat"): CLIENTS - 20}, counts
    [(assigned, seats)] = await sql("SELECT assigned, seats FROM plan WHERE account_id = 'acme'")
    [(rows,)] = await sql("SELECT COUNT(*) FROM assignment WHERE account_id = 'acme'")
    assert (assigned, seats, rows) == (20, 20, 20)
    [(events,)] = await sql("SELECT COUNT(*) FROM event WHERE type = 'agent.assigned'")
    assert events == 20
    await assert_invariants(live_settings)


async def test_r6_concurrent_purchases_with_one_key_charge_once(
    live: Api, live_settings: Settings, payments: PaymentsServer, sql: Callable[..., Any]
) -> None:
    key = uuid.uuid4().hex
    charges_before = len(payments.charges)

    responses = await asyncio.gather(*(live.buy(30, key=key) for _ in range(CLIENTS)))

    counts = statuses(list(responses))
    assert set(counts) <= {(201, None), (409, "idempotency_key_in_use")}, counts
    assert counts.get((201, None), 0) >= 1
    created = [r.json() for r in responses if r.status_code == 201]
    assert len({c["invoice"]["id"] for c in created}) == 1  # every 201 is the same purchase
    final = await live.buy(30, key=key)  # once the first finished, the key replays it
    assert final.status_code == 201 and final.headers["idempotent-replayed"] == "true"
    assert final.json() == created[0]

    invoices = await sql("SELECT id, status, total FROM invoice WHERE account_id = 'acme'")
    assert len(invoices) == 1 and invoices[0][1] == "paid"
    new_charges = payments.charges[charges_before:]
    assert [c["idempotency_key"] for c in new_charges] == [invoices[0][0]]
    assert new_charges[0]["amount"] == invoices[0][2]
    await assert_invariants(live_settings)


async def test_r6_concurrent_purchases_with_different_keys_buy_once(
    live: Api, live_settings: Settings, payments: PaymentsServer, sql: Callable[..., Any]
) -> None:
    charges_before = len(payments.charges)

    responses = await asyncio.gather(*(live.buy(40) for _ in range(CLIENTS)))

    counts = statuses(list(responses))
    assert counts.get((201, None)) == 1, counts
    assert set(counts) <= {(201, None), (409, "purchase_in_progress"), (409, "not_an_increase")}
    [(seats, status)] = await sql("SELECT seats, status FROM plan WHERE account_id = 'acme'")
    assert (seats, status) == (40, "active")
    [(paid,)] = await sql("SELECT COUNT(*) FROM invoice WHERE status = 'paid'")
    assert paid == 1
    assert len(payments.charges) - charges_before == 1
    await assert_invariants(live_settings)


async def test_r4_removal_racing_assignments_never_strands_an_agent(
    live: Api, live_settings: Settings, sql: Callable[..., Any]
) -> None:
    assert (await live.buy(30)).status_code == 201
    users = await live.add_users(CLIENTS)

    removal = live.remove(10)
    assigns = [live.assign(u, user="bob") for u in users[:30]]
    results = await asyncio.gather(removal, *assigns)

    [(seats, assigned)] = await sql("SELECT seats, assigned FROM plan WHERE account_id = 'acme'")
    [(rows,)] = await sql("SELECT COUNT(*) FROM assignment")
    assert assigned == rows <= seats
    removed = results[0]
    if removed.status_code == 200:
        assert seats == 10
    else:
        assert removed.json()["code"] == "seats_assigned"
        assert seats == 30
    await assert_invariants(live_settings)


async def test_r5_unassign_racing_assign_of_the_same_user_keeps_the_count(
    live: Api, live_settings: Settings, sql: Callable[..., Any]
) -> None:
    assert (await live.start_trial()).status_code == 201
    [user] = await live.add_users(1)
    for _ in range(5):
        await asyncio.gather(
            *(live.assign(user, user="bob") for _ in range(10)),
            *(live.unassign(user, user="bob") for _ in range(10)),
        )
        [(assigned,)] = await sql("SELECT assigned FROM plan WHERE account_id = 'acme'")
        [(rows,)] = await sql("SELECT COUNT(*) FROM assignment")
        assert assigned == rows <= 1
    await assert_invariants(live_settings)
