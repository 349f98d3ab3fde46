"""R15 at the boundary: billing runs racing at the instant a scheduled decrease takes effect.

Against the real server (2 worker processes); the outcome is checked in SQL and ``seats verify``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from app.config import Settings
from tests.conftest import PG_URL, Api
from tests.payments_server import PaymentsServer
from tests.races.conftest import assert_invariants

pytestmark = pytest.mark.skipif(not PG_URL, reason="race tests need PostgreSQL")

END = datetime(2026, 12, 1, tzinfo=UTC)  # the paid period's end: the decrease's instant


async def test_r15_billing_runs_racing_at_the_boundary_invoice_each_renewal_once_with_n_seats(
    live: Api, live_settings: Settings, payments: PaymentsServer, sql: Callable[..., Any]
) -> None:
    accounts = [f"acct{i}" for i in range(4)]
    scheduled = {}
    for i, account in enumerate(accounts):
        assert (await live.put_account(account)).status_code == 201
        assert (await live.put_user(account, "owner", "primary_admin")).status_code == 201
        assert (await live.buy(10 + i, account_id=account, user="owner")).status_code == 201
        scheduled[account] = 2 + i
        body = {"seats": 2 + i, "effective": "period_end"}
        r = await live.call("POST", account, "/removals", user="owner", json=body)
        assert r.status_code == 200, r.text
    charges_before = len(payments.charges)
    await live.set_clock(END)

    runs = await asyncio.gather(
        *(live.client.post("/internal/v1/billing/run", headers=live.as_service()) for _ in range(6))
    )

    assert all(r.status_code == 200 for r in runs), [r.text for r in runs]
    assert sum(r.json()["renewals_invoiced"] for r in runs) == len(accounts)
    renewals = await sql(
        "SELECT i.account_id, i.id, i.status, i.seats, i.total, l.quantity "
        "FROM invoice i JOIN invoice_line l ON l.invoice_id = i.id WHERE i.kind = 'renewal'"
    )
    assert sorted((a, s, q, t) for a, _, _, s, t, q in renewals) == sorted(
        (a, n, n, n * 1900) for a, n in scheduled.items()
    )
    assert {status for _, _, status, _, _, _ in renewals} == {"paid"}
    keys = [c["idempotency_key"] for c in payments.charges[charges_before:]]
    assert sorted(keys) == sorted(invoice_id for _, invoice_id, *_ in renewals)  # one charge each
    plans = await sql(
        "SELECT account_id, seats, scheduled_seats, scheduled_for FROM plan "
        "WHERE account_id LIKE 'acct%'"
    )
    assert sorted(plans) == sorted((a, n, None, None) for a, n in scheduled.items())
    decreased = await sql(
        "SELECT account_id, COUNT(*) FROM event WHERE type = 'seats.decreased' GROUP BY account_id"
    )
    assert sorted(decreased) == sorted((a, 1) for a in accounts)
    await assert_invariants(live_settings)
