"""Races against the real server with 2 worker processes and 50 concurrent clients.

Afterwards the outcome is checked in SQL (``seats verify`` and targeted queries), not only
through status codes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from app.config import Settings
from tests.conftest import PG_URL, Api
from tests.payments_server import PaymentsServer
from tests.races.conftest import assert_invariants, statuses

pytestmark = pytest.mark.skipif(not PG_URL, reason="race tests need PostgreSQL")

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


async def test_r9_concurrent_billing_runs_renew_each_period_once(
    live: Api, live_settings: Settings, payments: PaymentsServer, sql: Callable[..., Any]
) -> None:
    accounts = [f"acct{i}" for i in range(5)]
    for account in accounts:
        assert (await live.put_account(account)).status_code == 201
        assert (await live.put_user(account, "owner", "primary_admin")).status_code == 201
        assert (
            await live.buy(3 + len(account), account_id=account, user="owner")
        ).status_code == 201
    charges_before = len(payments.charges)
    await live.set_clock(datetime(2027, 2, 15, tzinfo=UTC))  # three periods behind

    runs = await asyncio.gather(
        *(
            live.client.post("/internal/v1/billing/run", headers=live.as_service())
            for _ in range(10)
        )
    )

    assert all(r.status_code == 200 for r in runs), [r.text for r in runs]
    assert sum(r.json()["renewals_invoiced"] for r in runs) == 3 * len(accounts)
    assert (
        await sql(
            "SELECT account_id, period_start FROM invoice WHERE kind = 'renewal' "
            "GROUP BY account_id, period_start HAVING COUNT(*) > 1"
        )
        == []
    )
    renewals = await sql("SELECT id, status FROM invoice WHERE kind = 'renewal'")
    assert len(renewals) == 3 * len(accounts)
    assert {status for _, status in renewals} == {"paid"}
    keys = [c["idempotency_key"] for c in payments.charges[charges_before:]]
    assert sorted(keys) == sorted(invoice_id for invoice_id, _ in renewals)  # one charge each
    await assert_invariants(live_settings)
