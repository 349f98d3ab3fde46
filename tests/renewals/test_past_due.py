"""R9: a declined renewal makes the plan past due; paying the invoice recovers it; the billing
run retries a decline after ``renewal_retry_hours`` and at most ``renewal_max_attempts`` times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Api, problem
from tests.renewals.conftest import PRICE, agent, events, invoices, pay, run_billing

DEC_1 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
DECLINE = "pm_decline_x"
GOOD = "pm_card_visa"


async def past_due(api: Api) -> dict[str, Any]:
    """acme with 3 seats (carol an agent) whose December renewal was declined; its invoice."""
    r = await api.buy(3)
    assert r.status_code == 201, r.text
    assert (await api.assign("carol")).status_code == 201
    assert (await api.put_account("acme", payment_method=DECLINE)).status_code == 200
    await api.set_clock(DEC_1)
    report = await run_billing(api)
    assert report["renewals_invoiced"] == 1
    assert report["renewals_declined"] == 1
    assert report["renewals_paid"] == 0
    (renewal,) = await invoices(api, kind="renewal")
    return renewal


async def attempts(sql: Any, invoice_id: str) -> list[tuple[int, str, str]]:
    rows = await sql(
        "SELECT a.number, a.gateway_key, o.outcome FROM charge_attempt a "
        "LEFT JOIN charge_outcome o ON o.invoice_id = a.invoice_id AND o.number = a.number "
        "WHERE a.invoice_id = :id ORDER BY a.number",
        id=invoice_id,
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def test_r9_declined_renewal_makes_plan_past_due(api: Api) -> None:
    renewal = await past_due(api)
    assert renewal["status"] == "pending"
    assert renewal["total"] == 3 * PRICE
    assert renewal["charge_id"] is None
    summary = await api.summary()
    assert summary["status"] == "past_due"
    assert summary["seats"] == 3
    # The period still moved on: the renewal is owed, not skipped.
    assert summary["current_period"] == {"start": "2026-12-01", "end": "2027-01-01"}
    (event,) = await events(api, type="plan.past_due")
    assert event["actor"] == "system:billing"
    assert event["data"]["invoice_id"] == renewal["id"]


async def test_r9_past_due_agents_keep_access(api: Api) -> None:
    await past_due(api)
    assert await agent(api, "carol") == {"user_id": "carol", "agent": True, "active": True}
    # Seats can still be assigned and unassigned while past due.
    assert (await api.assign("bob")).status_code == 201
    assert (await api.unassign("bob")).status_code == 204


async def test_r9_past_due_refuses_purchases(api: Api) -> None:
    await past_due(api)
    assert (await api.put_account("acme", payment_method=GOOD)).status_code == 200
    problem(await api.buy(5), 409, "past_due")
    assert [i["kind"] for i in await invoices(api)] == ["purchase", "renewal"]
    assert (await api.summary())["seats"] == 3


async def test_r9_pay_needs_primary_admin(api: Api) -> None:
    renewal = await past_due(api)
    problem(await pay(api, renewal["id"], user="carol"), 403, "not_primary_admin")
    problem(await pay(api, renewal["id"], user="bob"), 403, "not_primary_admin")
    r = await api.client.post(
        api.url("acme", f"/invoices/{renewal['id']}/pay"), headers=api.as_service()
    )
    problem(r, 403, "not_primary_admin")


async def test_r9_pay_still_declining_answers_402(api: Api, sql: Any) -> None:
    renewal = await past_due(api)
    body = problem(await pay(api, renewal["id"]), 402, "payment_declined")
    assert body["invoice_id"] == renewal["id"]
    (still,) = await invoices(api, kind="renewal")
    assert still["status"] == "pending"
    assert (await api.summary())["status"] == "past_due"
    assert len(await events(api, type="plan.past_due")) == 1  # already past due: no new event
    assert await attempts(sql, renewal["id"]) == [
        (1, renewal["id"], "declined"),
        (2, f"{renewal['id']}-1", "declined"),
    ]


async def test_r9_pay_with_updated_card_recovers(api: Api, sql: Any) -> None:
    """A customer whose card was declined updates it and pays: the charge uses the account's
    current payment method (the invoice keeps the one it was invoiced with, as history)."""
    renewal = await past_due(api)
    problem(await pay(api, renewal["id"]), 402, "payment_declined")
    assert (await api.put_account("acme", payment_method=GOOD)).status_code == 200
    r = await pay(api, renewal["id"])
    assert r.status_code == 200, r.text
    paid = r.json()
    assert paid["id"] == renewal["id"]
    assert paid["status"] == "paid"
    assert paid["charge_id"]
    assert paid["total"] == 3 * PRICE
    summary = await api.summary()
    assert summary["status"] == "active"
    (recovered,) = await events(api, type="plan.recovered")
    assert recovered["actor"] == "user:alice"
    assert recovered["data"]["invoice_id"] == renewal["id"]
    inv = renewal["id"]
    tries = await attempts(sql, inv)
    assert tries == [
        (1, inv, "declined"),
        (2, f"{inv}-1", "declined"),
        (3, f"{inv}-2", "succeeded"),
    ]
    assert len({key for _, key, _ in tries}) == len(tries)
    (stored,) = await sql("SELECT payment_method FROM invoice WHERE id = :id", id=inv)
    assert stored[0] == DECLINE  # the invoice row is history: it keeps its method
    # Recovered: purchases work again, and paying twice is refused.
    assert (await api.buy(4)).status_code == 201
    problem(await pay(api, inv), 409, "invoice_not_payable")


async def test_r9_billing_run_retry_recovers_after_card_update(api: Api) -> None:
    renewal = await past_due(api)
    assert (await api.put_account("acme", payment_method=GOOD)).status_code == 200
    await api.set_clock(DEC_1 + timedelta(hours=24))
    report = await run_billing(api)
    assert report["renewals_paid"] == 1
    assert report["renewals_invoiced"] == 0
    (paid,) = await invoices(api, kind="renewal")
    assert paid["id"] == renewal["id"] and paid["status"] == "paid"
    assert (await api.summary())["status"] == "active"
    (recovered,) = await events(api, type="plan.recovered")
    assert recovered["actor"] == "system:billing"


@pytest.mark.settings(dunning_days=30)  # the retry policy alone, before dunning ends it
async def test_r9_billing_run_retries_after_24_hours_at_most_4_times(api: Api, sql: Any) -> None:
    renewal = await past_due(api)
    inv = renewal["id"]
    # Not yet: the decline was at DEC_1.
    await api.set_clock(DEC_1 + timedelta(hours=23, minutes=59))
    report = await run_billing(api)
    assert report["renewals_declined"] == 0 and report["renewals_paid"] == 0
    assert len(await attempts(sql, inv)) == 1
    # Each 24 hours after the last decline, one more try, until 4 in all.
    for n in (2, 3, 4):
        await api.set_clock(DEC_1 + timedelta(hours=24 * (n - 1)))
        report = await run_billing(api)
        assert report["renewals_declined"] == 1, n
        assert len(await attempts(sql, inv)) == n
    # 4 declines: the run gives up; only paying the invoice retries it.
    for days in (4, 10, 25):
        await api.set_clock(DEC_1 + timedelta(days=days))
        report = await run_billing(api)
        assert report["renewals_declined"] == 0 and report["renewals_paid"] == 0
    tries = await attempts(sql, inv)
    assert [key for _, key, _ in tries] == [inv, f"{inv}-1", f"{inv}-2", f"{inv}-3"]
    assert {outcome for _, _, outcome in tries} == {"declined"}
    assert (await api.summary())["status"] == "past_due"
    assert (await agent(api, "carol"))["active"] is True
    assert (await api.put_account("acme", payment_method=GOOD)).status_code == 200
    r = await pay(api, inv)
    assert r.status_code == 200, r.text
    assert (await attempts(sql, inv))[-1] == (5, f"{inv}-4", "succeeded")
    assert (await api.summary())["status"] == "active"


@pytest.mark.settings(dunning_days=45)
async def test_r9_past_due_plan_keeps_renewing_and_recovers_when_all_paid(
    api: Api, sql: Any
) -> None:
    first = await past_due(api)
    await api.set_clock(datetime(2027, 1, 1, tzinfo=UTC))
    report = await run_billing(api)
    assert report["renewals_invoiced"] == 1
    renewals = await invoices(api, kind="renewal")
    assert [i["status"] for i in renewals] == ["pending", "pending"]
    assert len(await events(api, type="plan.past_due")) == 1
    assert (await api.put_account("acme", payment_method=GOOD)).status_code == 200
    assert (await pay(api, first["id"])).status_code == 200
    # One renewal still owed: still past due.
    assert (await api.summary())["status"] == "past_due"
    assert await events(api, type="plan.recovered") == []
    assert (await pay(api, renewals[1]["id"])).status_code == 200
    assert (await api.summary())["status"] == "active"
    assert len(await events(api, type="plan.recovered")) == 1


async def test_r9_pay_unknown_or_settled_invoice(api: Api) -> None:
    r = await api.buy(3)
    purchase = r.json()["invoice"]
    problem(await pay(api, "inv_" + "0" * 26), 404, "invoice_not_found")
    problem(await pay(api, purchase["id"]), 409, "invoice_not_payable")
    problem(
        await pay(api, purchase["id"], account_id="globex", user="gina"), 404, "invoice_not_found"
    )
