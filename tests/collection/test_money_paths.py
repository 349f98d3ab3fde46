"""Money off the happy path (SPEC §5, §6, R14): keys that always end in the purchase's final
answer, and a pending purchase that can never wedge its account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import NOW, Api, problem
from tests.renewals.conftest import events, invoices, pay, run_billing

KEY = "buy-5-seats"


def replayed(r: httpx.Response) -> bool:
    return r.headers.get("Idempotent-Replayed") == "true"


async def test_s5_declined_purchase_replays_its_402_never_201(api: Api) -> None:
    assert (await api.put_account("acme", payment_method="pm_decline_card")).status_code == 200
    first = await api.buy(5, key=KEY)
    problem(first, 402, "payment_declined")
    again = await api.buy(5, key=KEY)
    body = problem(again, 402, "payment_declined")
    assert replayed(again) and body["invoice_id"] == first.json()["invoice_id"]
    (invoice,) = await invoices(api)
    assert invoice["status"] == "failed"
    assert (await api.summary())["seats"] == 0


async def test_s5_renewal_due_is_not_stored_for_the_key(api: Api) -> None:
    assert (await api.buy(2)).status_code == 201
    # The period ended and the run has not renewed it yet: "try again later".
    await api.set_clock(datetime(2026, 12, 1, 8, tzinfo=UTC))
    problem(await api.buy(5, key=KEY), 409, "renewal_due")
    await run_billing(api)
    r = await api.buy(5, key=KEY)
    assert r.status_code == 201, r.text
    assert not replayed(r)
    assert r.json()["summary"]["seats"] == 5


async def test_s5_same_key_other_body_after_503_is_refused(api: Api) -> None:
    assert (await api.put_account("acme", payment_method="pm_unavailable_x")).status_code == 200
    problem(await api.buy(5, key=KEY), 503, "payment_pending")
    # The 503 was not stored (retryable), but the pending invoice keeps the body's fingerprint.
    problem(await api.buy(6, key=KEY), 422, "idempotency_key_reused")
    (invoice,) = await invoices(api)
    assert invoice["status"] == "pending" and invoice["lines"][0]["quantity"] == 5


async def wedged(api: Api) -> dict[str, Any]:
    """An active plan of 2 seats whose purchase of 5 has no definitive answer."""
    assert (await api.buy(2)).status_code == 201
    assert (await api.put_account("acme", payment_method="pm_unavailable_x")).status_code == 200
    body = problem(await api.buy(5, key=KEY), 503, "payment_pending")
    problem(await api.buy(6), 409, "purchase_in_progress")
    problem(await api.remove(1), 409, "purchase_in_progress")
    pending = [i for i in await invoices(api) if i["status"] == "pending"]
    assert [i["id"] for i in pending] == [body["invoice_id"]]
    return pending[0]


async def test_r14_pending_purchase_is_retried_then_voided_and_the_account_unwedged(
    api: Api,
) -> None:
    invoice = await wedged(api)
    # Within SEATS_PENDING_PURCHASE_HOURS (23): retried with the same key, reported.
    await api.set_clock(NOW + timedelta(hours=22))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    report = r.json()
    assert report["charges_unavailable"] == 1 and report["needs_operator"] is True
    assert report["purchases_voided"] == 0
    # After it: voided, with its event, and the account can buy and remove again.
    await api.set_clock(NOW + timedelta(hours=23))
    report = await run_billing(api)
    assert report["purchases_voided"] == 1
    (voided,) = [i for i in await invoices(api) if i["id"] == invoice["id"]]
    assert voided["status"] == "void" and voided["paid_at"] is None
    assert voided["failure_reason"]
    (event,) = await events(api, type="purchase.voided")
    assert event["data"]["invoice_id"] == invoice["id"] and event["actor"] == "system:billing"
    summary = await api.summary()
    assert summary["seats"] == 2 and summary["status"] == "active"
    # The key's answer is final now: voided, never a 201 nor a fresh charge.
    problem(await api.buy(5, key=KEY), 409, "purchase_voided")
    problem(await pay(api, invoice["id"]), 409, "invoice_not_payable")
    assert (await api.remove(1)).status_code == 200
    assert (await api.put_account("acme", payment_method="pm_card_visa")).status_code == 200
    r = await api.buy(4)
    assert r.status_code == 201, r.text
    assert r.json()["summary"]["seats"] == 4


async def test_r14_renewal_that_waited_for_a_voided_purchase_goes_ahead(api: Api) -> None:
    assert (await api.buy(2)).status_code == 201
    await api.set_clock(datetime(2026, 11, 30, 6, tzinfo=UTC))
    assert (await api.put_account("acme", payment_method="pm_unavailable_x")).status_code == 200
    problem(await api.buy(5, key=KEY), 503, "payment_pending")
    assert (await api.put_account("acme", payment_method="pm_card_visa")).status_code == 200
    # The period ends while the purchase waits: the renewal waits too...
    await api.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.json()["renewals_invoiced"] == 0
    assert await invoices(api, kind="renewal") == []
    # ... and goes ahead, for the total the plan really has, once the purchase is voided.
    await api.set_clock(datetime(2026, 12, 1, 6, tzinfo=UTC))
    report = await run_billing(api)
    assert report["purchases_voided"] == 1
    assert report["renewals_invoiced"] == 1 and report["renewals_paid"] == 1
    (renewal,) = await invoices(api, kind="renewal")
    assert renewal["total"] == 2 * 1900 and renewal["status"] == "paid"
    assert (await api.summary())["current_period"] == {"start": "2026-12-01", "end": "2027-01-01"}
