"""The billing run over time: trial expiry (R10) and renewals (R9, R7), driven by the test clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.conftest import NOW, Api, problem
from tests.renewals.conftest import (
    PRICE,
    agent,
    events,
    invoices,
    period_of,
    prorated,
    run_billing,
)

TRIAL_END = NOW + timedelta(days=14)
DEC_1 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


async def buy_ok(
    api: Api, seats: int, account_id: str = "acme", user: str = "alice"
) -> dict[str, Any]:
    r = await api.buy(seats, account_id=account_id, user=user)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


# --- R10: trial expiry ----------------------------------------------------------------------


async def expired_trial_with_agents(api: Api) -> dict[str, Any]:
    """acme's trial with bob and carol as agents, run past its end."""
    assert (await api.start_trial()).status_code == 201
    for user_id in ("bob", "carol"):
        assert (await api.assign(user_id)).status_code == 201
    await api.set_clock(TRIAL_END)
    return await run_billing(api)


async def test_r10_trial_not_expired_before_its_end(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    await api.set_clock(TRIAL_END - timedelta(seconds=1))
    report = await run_billing(api)
    assert report["trials_expired"] == 0
    assert (await api.summary())["status"] == "trialing"
    assert await events(api, type="trial.expired") == []


async def test_r10_trial_expires_with_zero_seats_and_assignments_kept(api: Api) -> None:
    report = await expired_trial_with_agents(api)
    assert report["trials_expired"] == 1
    assert report["renewals_invoiced"] == 0
    summary = await api.summary()
    assert summary["status"] == "trial_expired"
    assert summary["seats"] == 0
    assert summary["assigned"] == 2
    assert summary["available"] == 0
    r = await api.call("GET", "acme", "/agents", user="carol")
    assert r.status_code == 200
    assert {a["user_id"] for a in r.json()["data"]} == {"bob", "carol"}
    for user_id in ("bob", "carol"):
        assert await agent(api, user_id) == {"user_id": user_id, "agent": True, "active": False}
    (expired,) = await events(api, type="trial.expired")
    assert expired["actor"] == "system:billing"
    assert expired["data"]["seats_after"] == 0
    assert expired["data"]["assigned"] == 2
    assert await invoices(api) == []  # a trial costs nothing, even when it ends


async def test_r10_trial_expiry_runs_once(api: Api) -> None:
    await expired_trial_with_agents(api)
    again = await run_billing(api)
    assert again["trials_expired"] == 0
    await api.set_clock(TRIAL_END + timedelta(days=40))
    later = await run_billing(api)
    assert later["trials_expired"] == 0 and later["renewals_invoiced"] == 0
    assert len(await events(api, type="trial.expired")) == 1
    assert (await api.summary())["status"] == "trial_expired"


async def test_r10_expired_trial_grants_no_new_assignment(api: Api) -> None:
    await expired_trial_with_agents(api)
    await api.put_user("acme", "dave")
    problem(await api.assign("dave"), 409, "no_active_plan")


async def test_r10_purchase_covering_agents_restores_access(api: Api) -> None:
    await expired_trial_with_agents(api)
    body = await buy_ok(api, 2)
    assert body["summary"]["status"] == "active"
    assert body["summary"]["seats"] == 2
    assert body["summary"]["assigned"] == 2
    for user_id in ("bob", "carol"):
        assert await agent(api, user_id) == {"user_id": user_id, "agent": True, "active": True}
    # The purchase out of an expired trial charges all its seats, prorated (SPEC §3):
    # 2026-12-05 in 2026-12-01..2027-01-01: 27 of 31 days.
    assert body["invoice"]["total"] == prorated(2, 1, 27, 31)


async def test_r10_purchase_must_cover_kept_assignments(api: Api) -> None:
    await expired_trial_with_agents(api)
    body = problem(await api.buy(1), 409, "seats_assigned")
    assert body["assigned"] == 2
    assert (await api.summary())["status"] == "trial_expired"
    assert await invoices(api) == []
    assert (await agent(api, "bob"))["active"] is False


# --- R9: renewals ---------------------------------------------------------------------------


async def test_r9_monthly_renewal_at_period_end(api: Api) -> None:
    await buy_ok(api, 5)  # 2026-11-21, period 2026-11-01..2026-12-01
    await api.set_clock(DEC_1)
    report = await run_billing(api)
    assert report["renewals_invoiced"] == 1
    assert report["renewals_paid"] == 1
    assert report["renewals_declined"] == 0
    (renewal,) = await invoices(api, kind="renewal")
    assert renewal["status"] == "paid"
    assert renewal["total"] == 5 * PRICE
    assert renewal["charge_id"]
    assert period_of(renewal) == (date(2026, 12, 1), date(2027, 1, 1))
    assert renewal["lines"][0]["quantity"] == 5
    summary = await api.summary()
    assert summary["status"] == "active"
    assert summary["current_period"] == {"start": "2026-12-01", "end": "2027-01-01"}
    assert summary["next_renewal_at"].startswith("2027-01-01T00:00:00")
    (renewed,) = await events(api, type="plan.renewed")
    assert renewed["actor"] == "system:billing"
    assert renewed["data"]["invoice_id"] == renewal["id"]
    assert renewed["data"]["seats"] == 5


async def test_r9_nothing_renewed_before_period_end(api: Api) -> None:
    await buy_ok(api, 5)
    await api.set_clock(DEC_1 - timedelta(seconds=1))
    report = await run_billing(api)
    assert report["renewals_invoiced"] == 0
    assert await invoices(api, kind="renewal") == []


async def test_r9_one_renewal_invoice_per_period(api: Api, sql: Any) -> None:
    await buy_ok(api, 5)
    await api.set_clock(DEC_1)
    await run_billing(api)
    again = await run_billing(api)
    assert again["renewals_invoiced"] == 0 and again["renewals_paid"] == 0
    await api.set_clock(DEC_1 + timedelta(days=10))
    later = await run_billing(api)
    assert later["renewals_invoiced"] == 0
    assert len(await invoices(api, kind="renewal")) == 1
    assert len(await events(api, type="plan.renewed")) == 1
    rows = await sql(
        "SELECT COUNT(*) FROM charge_attempt a JOIN invoice i ON i.id = a.invoice_id "
        "WHERE i.kind = 'renewal'"
    )
    assert rows[0][0] == 1


async def test_r9_catch_up_invoices_each_missed_period(api: Api) -> None:
    await buy_ok(api, 3)
    await api.set_clock(at("2027-02-15"))  # three periods ended: Dec, Jan and Feb started
    report = await run_billing(api)
    assert report["renewals_invoiced"] == 3
    assert report["renewals_paid"] == 3
    renewals = await invoices(api, kind="renewal")
    assert [period_of(i) for i in renewals] == [
        (date(2026, 12, 1), date(2027, 1, 1)),
        (date(2027, 1, 1), date(2027, 2, 1)),
        (date(2027, 2, 1), date(2027, 3, 1)),
    ]
    assert all(i["status"] == "paid" and i["total"] == 3 * PRICE for i in renewals)
    assert len({i["charge_id"] for i in renewals}) == 3
    assert (await api.summary())["current_period"] == {"start": "2027-02-01", "end": "2027-03-01"}
    assert (await run_billing(api))["renewals_invoiced"] == 0


async def test_r9_yearly_renewal_costs_twelve_months(api: Api) -> None:
    body = await buy_ok(api, 4, account_id="globex", user="gina")
    # 2026-11-21 in 2026-03-15..2027-03-15 (365 days): 114 days remain.
    assert body["invoice"]["total"] == prorated(4, 12, 114, 365)
    await api.set_clock(at("2027-03-15", 0))
    report = await run_billing(api)
    assert report["renewals_invoiced"] == 1
    (renewal,) = await invoices(api, "globex", kind="renewal")
    assert renewal["status"] == "paid"
    assert renewal["total"] == 4 * PRICE * 12
    assert renewal["lines"][0]["unit_price"] == PRICE * 12
    assert period_of(renewal) == (date(2027, 3, 15), date(2028, 3, 15))
    summary = await api.summary("globex", user="gina")
    assert summary["current_period"] == {"start": "2027-03-15", "end": "2028-03-15"}
    assert await invoices(api, kind="renewal") == []  # acme has no plan: nothing renewed


async def test_r9_anchor_on_the_31st_clamps_and_returns(api: Api) -> None:
    assert (await api.put_account("jan31", billing_anchor="2027-01-31")).status_code == 201
    assert (await api.put_user("jan31", "jo", "primary_admin")).status_code == 201
    await api.set_clock(at("2027-01-31"))
    body = await buy_ok(api, 2, account_id="jan31", user="jo")
    assert period_of(body["invoice"])[1] == date(2027, 2, 28)
    assert body["invoice"]["total"] == 2 * PRICE  # the whole 28-day period remains
    for day in ("2027-02-28", "2027-03-31", "2027-04-30"):
        await api.set_clock(at(day, 0))
        assert (await run_billing(api))["renewals_invoiced"] == 1
    renewals = await invoices(api, "jan31", kind="renewal")
    assert [period_of(i) for i in renewals] == [
        (date(2027, 2, 28), date(2027, 3, 31)),
        (date(2027, 3, 31), date(2027, 4, 30)),
        (date(2027, 4, 30), date(2027, 5, 31)),
    ]
    assert all(i["total"] == 2 * PRICE and i["status"] == "paid" for i in renewals)


async def test_r9_zero_seat_period_advances_without_invoice(api: Api) -> None:
    await buy_ok(api, 3)
    r = await api.remove(0)
    assert r.status_code == 200, r.text
    assert r.json()["seats"] == 0
    await api.set_clock(at("2027-01-10"))
    report = await run_billing(api)
    assert report["renewals_invoiced"] == 0
    assert report["renewals_paid"] == 0
    assert await invoices(api, kind="renewal") == []
    summary = await api.summary()
    assert summary["status"] == "active"
    assert summary["current_period"] == {"start": "2027-01-01", "end": "2027-02-01"}
    renewed = await events(api, type="plan.renewed")
    assert [e["data"]["period_start"] for e in renewed] == ["2026-12-01", "2027-01-01"]
    assert all("invoice_id" not in e["data"] for e in renewed)


async def test_r7_removal_mid_period_next_renewal_charges_new_total(api: Api) -> None:
    await buy_ok(api, 5)
    await api.set_clock(at("2026-11-25"))
    r = await api.remove(2)
    assert r.status_code == 200, r.text
    # No refund for the current period: the purchase invoice is untouched, nothing new.
    assert [i["kind"] for i in await invoices(api)] == ["purchase"]
    await api.set_clock(DEC_1)
    await run_billing(api)
    (renewal,) = await invoices(api, kind="renewal")
    assert renewal["total"] == 2 * PRICE
    assert renewal["lines"][0]["quantity"] == 2


async def test_r9_purchase_after_renewal_is_prorated_over_new_period(api: Api) -> None:
    await buy_ok(api, 2)
    await api.set_clock(at("2026-12-11"))  # renewal due since Dec 1, not yet run
    problem(await api.buy(4), 409, "renewal_due")
    await run_billing(api)
    body = await buy_ok(api, 4)
    # 2 added seats, 2026-12-11 in 2026-12-01..2027-01-01: 21 of 31 days.
    assert body["invoice"]["total"] == prorated(2, 1, 21, 31)
    await api.set_clock(at("2027-01-01", 0))
    await run_billing(api)
    renewals = await invoices(api, kind="renewal")
    assert [i["total"] for i in renewals] == [2 * PRICE, 4 * PRICE]
