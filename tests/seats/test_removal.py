"""R4 only empty seats can be removed; R7 a removal lowers the total at once, with no refund."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import NOW, Api, problem
from tests.seats.helpers import billing_run, events, invoices


async def active_with_agents(api: Api, seats: int, agents: int) -> None:
    assert (await api.buy(seats)).status_code == 201
    for user_id in await api.add_users(agents, prefix="agent"):
        assert (await api.assign(user_id)).status_code == 201


async def test_r4_cannot_remove_assigned_seats(api: Api) -> None:
    await active_with_agents(api, seats=10, agents=4)
    before = (await api.summary(), await events(api), await invoices(api))
    for seats in (3, 0):
        body = problem(await api.remove(seats), 409, "seats_assigned")
        assert body["assigned"] == 4
    assert (await api.summary(), await events(api), await invoices(api)) == before
    assert before[0]["seats"] == 10


async def test_r4_removal_down_to_exactly_the_assigned_seats(api: Api) -> None:
    await active_with_agents(api, seats=10, agents=4)
    r = await api.remove(4)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert (summary["seats"], summary["assigned"], summary["available"]) == (4, 4, 0)
    assert summary["status"] == "active"
    assert (summary["monthly_total"], summary["cycle_total"]) == (4 * 1900, 4 * 1900)
    assert await api.summary() == summary
    # Newest first: the removal, then the thresholds it made usage reach (R16).
    removed, *reached = list(reversed(await events(api)))[-3:]
    assert (removed["type"], removed["actor"]) == ("seats.removed", "user:alice")
    assert removed["data"] == {"seats_before": 10, "seats_after": 4}
    assert [e["type"] for e in reached] == ["seats.threshold_reached"] * 2


async def test_r7_removal_to_zero_without_agents(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    r = await api.remove(0)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["seats"], r.json()["available"]) == ("active", 0, 0)
    problem(await api.assign("carol"), 409, "no_empty_seat")


async def test_r7_removal_frees_nothing_but_empty_seats_at_once(api: Api) -> None:
    await active_with_agents(api, seats=5, agents=1)
    assert (await api.remove(2)).status_code == 200
    assert (await api.assign("carol")).status_code == 201
    problem(await api.assign("bob"), 409, "no_empty_seat")


async def test_r7_removal_must_lower_the_total(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    before = (await api.summary(), await events(api))
    for seats in (5, 6, 1_000):
        assert problem(await api.remove(seats), 409, "not_a_decrease")["current"] == 5
    assert (await api.summary(), await events(api)) == before


async def test_r7_no_refund_and_next_renewal_charges_the_new_total(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    [bought] = await invoices(api)
    assert (await api.remove(4)).status_code == 200
    assert await invoices(api) == [bought]  # no credit note, no negative invoice
    await api.set_clock(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    report = await billing_run(api)
    assert (report["renewals_invoiced"], report["renewals_paid"]) == (1, 1)
    renewal, first = await invoices(api)
    assert first == bought
    assert (renewal["kind"], renewal["status"]) == ("renewal", "paid")
    assert renewal["total"] == 4 * 1900
    [line] = renewal["lines"]
    assert (line["quantity"], line["unit_price"], line["amount"]) == (4, 1900, 4 * 1900)
    assert (line["period_start"], line["period_end"]) == ("2026-12-01", "2027-01-01")
    summary = await api.summary()
    assert summary["current_period"] == {"start": "2026-12-01", "end": "2027-01-01"}


@pytest.mark.parametrize("plan", ["none", "trialing", "trial_expired"])
async def test_r7_removal_needs_a_paid_plan(api: Api, plan: str) -> None:
    if plan != "none":
        assert (await api.start_trial()).status_code == 201
    if plan == "trial_expired":
        await api.set_clock(NOW + timedelta(days=15))
        await billing_run(api)
    summary = await api.summary()
    assert summary["status"] == plan
    problem(await api.remove(0), 409, "no_active_plan")
    assert await api.summary() == summary


async def test_r7_past_due_plan_may_still_remove_empty_seats(api: Api) -> None:
    await active_with_agents(api, seats=5, agents=2)
    assert (await api.put_account("acme", payment_method="pm_decline_card")).status_code == 200
    await api.set_clock(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    await billing_run(api)
    assert (await api.summary())["status"] == "past_due"
    problem(await api.remove(1), 409, "seats_assigned")
    r = await api.remove(2)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["seats"]) == ("past_due", 2)
