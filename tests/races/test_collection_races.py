"""Two collectors of one invoice (SPEC §6): ``/pay`` and billing runs racing against the real
server with 2 workers and a real payments server. Captured money equals paid invoices, always:
each invoice is charged at most once, and no success is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.config import Settings
from tests.conftest import PG_URL, Api
from tests.payments_server import PaymentsServer
from tests.races.conftest import assert_invariants

pytestmark = pytest.mark.skipif(not PG_URL, reason="race tests need PostgreSQL")

ACCOUNTS = 8
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)


async def past_due_renewals(live: Api, sql: Callable[..., Any]) -> dict[str, str]:
    """ACCOUNTS accounts whose December renewal was declined: account -> renewal id."""
    accounts = [f"due{i}" for i in range(ACCOUNTS)]
    for account_id in accounts:
        assert (await live.put_account(account_id)).status_code == 201
        assert (await live.put_user(account_id, "owner", "primary_admin")).status_code == 201
        r = await live.buy(3, account_id=account_id, user="owner")
        assert r.status_code == 201, r.text
        r = await live.put_account(account_id, payment_method="pm_decline_card")
        assert r.status_code == 200
    await live.set_clock(DEC_1)
    r = await live.client.post("/internal/v1/billing/run", headers=live.as_service())
    assert r.status_code == 200 and r.json()["renewals_declined"] == ACCOUNTS, r.text
    rows = await sql("SELECT account_id, id FROM invoice WHERE kind = 'renewal'")
    return {row[0]: row[1] for row in rows}


async def test_r9_pay_and_billing_runs_racing_charge_each_invoice_once(
    live: Api, live_settings: Settings, payments: PaymentsServer, sql: Callable[..., Any]
) -> None:
    renewals = await past_due_renewals(live, sql)
    for account_id in renewals:
        assert (
            await live.put_account(account_id, payment_method="pm_card_visa")
        ).status_code == 200
    # A day later the run's own retry is due too: every collector wants to charge now.
    await live.set_clock(DEC_1 + timedelta(hours=25))
    pays = [
        live.call("POST", account_id, f"/invoices/{invoice_id}/pay", user="owner")
        for account_id, invoice_id in renewals.items()
        for _ in range(3)
    ]
    runs = [
        live.client.post("/internal/v1/billing/run", headers=live.as_service()) for _ in range(4)
    ]
    responses = await asyncio.gather(*pays, *runs)

    outcomes = {
        (r.status_code, r.json().get("code") if r.status_code >= 400 else None) for r in responses
    }
    # Paid, or told that another collector is charging it or already did: never a 5xx else.
    assert outcomes <= {(200, None), (503, "payment_pending"), (409, "invoice_not_payable")}, (
        outcomes
    )
    # Whatever a collector left in flight is settled by one more run.
    r = await live.client.post("/internal/v1/billing/run", headers=live.as_service())
    assert r.status_code == 200, r.text
    for account_id, invoice_id in renewals.items():
        captured = [
            c
            for c in payments.charges
            if c["idempotency_key"] == invoice_id
            or c["idempotency_key"].startswith(f"{invoice_id}-")
        ]
        [(status, charge_id)] = await sql(
            "SELECT status, charge_id FROM invoice WHERE id = :id", id=invoice_id
        )
        assert status == "paid", (account_id, status)
        assert [c["id"] for c in captured] == [charge_id], (account_id, captured)
        summary = await live.summary(account_id, user="owner")
        assert summary["status"] == "active"
    # No gateway key was ever sent while another collector had it in flight either.
    [(concurrent,)] = await sql(
        "SELECT COUNT(*) FROM charge_attempt a WHERE NOT EXISTS (SELECT 1 FROM charge_outcome o "
        "WHERE o.invoice_id = a.invoice_id AND o.number = a.number)"
    )
    assert concurrent == 0
    await assert_invariants(live_settings)
