"""R9 "Dunning ends": a renewal still unpaid ``SEATS_DUNNING_DAYS`` after its first decline
cancels the plan; a later purchase restarts it.

Driven from the outside on both databases: the API (in process) and its test clock, the real
`seats billing run` process once a day as cron would, charging a loopback payments server.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bench.billing_fixture import LoopbackPayments
from tests.billing_run.conftest import (
    RunBilling,
    assert_captured_equals_paid,
    assert_ran_clean,
    assert_verify_passes,
)
from tests.conftest import Api, problem
from tests.renewals.conftest import agent, collect, events, invoices, prorated

FIRST_DECLINE = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # acme's renewal date, anchor the 1st
DECLINE = "pm_decline_card"
GOOD = "pm_card_visa"


async def declined_renewal(api: Api, billing_run: RunBilling, **env: str) -> dict[str, object]:
    """acme with 5 paid seats and two agents (bob, carol), whose December renewal the billing
    run charged on 2026-12-01 12:00 and the card declined; the renewal invoice."""
    assert (await api.buy(5)).status_code == 201
    for user_id in ("bob", "carol"):
        assert (await api.assign(user_id)).status_code == 201
    assert (await api.put_user("acme", "dave")).status_code == 201
    assert (await api.put_account("acme", payment_method=DECLINE)).status_code == 200
    await api.set_clock(FIRST_DECLINE)
    assert_ran_clean(billing_run(**env))  # a decline is the customer's business, not an error
    summary = await api.summary()
    assert summary["status"] == "past_due", summary
    (renewal,) = await invoices(api, kind="renewal")
    assert renewal["status"] == "pending"
    return renewal


async def run_on(api: Api, billing_run: RunBilling, at: datetime, **env: str) -> None:
    """Move the clock to ``at`` and run the billing run there."""
    await api.set_clock(at)
    assert_ran_clean(billing_run(**env))


async def test_r9_dunning_ends_in_canceled(
    billing_api: Api, billing_run: RunBilling, payments: LoopbackPayments, database_url: str
) -> None:
    api = billing_api
    renewal = await declined_renewal(api, billing_run)

    # Within the 14 days (the default): past due, the agents keep working.
    for days in (1, 7, 13):
        await run_on(api, billing_run, FIRST_DECLINE + timedelta(days=days))
        summary = await api.summary()
        assert summary["status"] == "past_due", (days, summary)
        assert (await agent(api, "bob"))["active"] is True

    # 14 days after the first decline, still unpaid: canceled.
    await run_on(api, billing_run, FIRST_DECLINE + timedelta(days=14))
    summary = await api.summary()
    assert summary["status"] == "canceled", summary
    assert summary["seats"] == 0
    assert summary["assigned"] == 2  # assignments kept ...
    agents = await collect(api, "acme", "/agents")
    assert sorted(a["user_id"] for a in agents) == ["bob", "carol"]
    for user_id in ("bob", "carol"):  # ... without access (as R10)
        r = await api.call("GET", "acme", f"/agents/{user_id}", user=user_id)
        assert r.status_code == 200, r.text
        assert r.json() == {"user_id": user_id, "agent": True, "active": False}
    problem(await api.assign("dave"), 409, "no_active_plan")
    (still,) = await invoices(api, kind="renewal")
    assert still["id"] == renewal["id"]
    assert still["status"] == "uncollectible"
    r = await api.call("GET", "acme", "/invoices?status=uncollectible")
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["data"]] == [renewal["id"]]
    (canceled,) = await events(api, type="plan.canceled")
    assert canceled["actor"] == "system:billing"

    # Later period ends: nothing is invoiced, nothing is charged.
    calls = payments.total_calls
    for day in (datetime(2027, 1, 1, 12, 0, tzinfo=UTC), datetime(2027, 2, 1, 12, 0, tzinfo=UTC)):
        await run_on(api, billing_run, day)
        assert [i["id"] for i in await invoices(api, kind="renewal")] == [renewal["id"]]
        assert (await api.summary())["status"] == "canceled"
    assert payments.total_calls == calls

    # A purchase restarts it, like one out of a trial: R4 first, then all seats charged.
    assert (await api.put_account("acme", payment_method=GOOD)).status_code == 200
    await api.set_clock(datetime(2027, 2, 10, 12, 0, tzinfo=UTC))
    body = problem(await api.buy(1), 409, "seats_assigned")
    assert body["assigned"] == 2
    r = await api.buy(4)
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    assert invoice["kind"] == "purchase"
    assert invoice["status"] == "paid"
    # All 4 seats, prorated over 2027-02-01..2027-03-01 from the 10th: 19 of 28 days.
    assert invoice["total"] == prorated(4, 1, 19, 28)
    summary = await api.summary()
    assert summary["status"] == "active"
    assert (summary["seats"], summary["assigned"]) == (4, 2)
    assert summary["current_period"] == {"start": "2027-02-01", "end": "2027-03-01"}
    assert (await agent(api, "bob"))["active"] is True

    await assert_captured_equals_paid(database_url, payments)
    assert_verify_passes(database_url)


async def test_r9_dunning_days_is_a_setting(billing_api: Api, billing_run: RunBilling) -> None:
    api = billing_api
    await declined_renewal(api, billing_run, SEATS_DUNNING_DAYS="3")
    await run_on(api, billing_run, FIRST_DECLINE + timedelta(days=2), SEATS_DUNNING_DAYS="3")
    assert (await api.summary())["status"] == "past_due"
    await run_on(api, billing_run, FIRST_DECLINE + timedelta(days=3), SEATS_DUNNING_DAYS="3")
    summary = await api.summary()
    assert summary["status"] == "canceled", summary
    (renewal,) = await invoices(api, kind="renewal")
    assert renewal["status"] == "uncollectible"
    assert date.fromisoformat(renewal["lines"][0]["period_start"]) == FIRST_DECLINE.date()
