"""R15 scheduled decreases: a lower total for the end of the paid period, each sentence a test.

``acme`` is monthly with its anchor on the 1st; the clock starts on 2026-11-21, so a purchase
pays through 2026-12-01 and a decrease scheduled now takes effect at 2026-12-01T00:00Z.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import Api, problem
from tests.seats.helpers import billing_run, events, invoices

END = datetime(2026, 12, 1, tzinfo=UTC)
EFFECTIVE_AT = "2026-12-01T00:00:00Z"


async def schedule(
    api: Api, seats: int, *, user: str = "alice", key: str | None = None
) -> httpx.Response:
    body = {"seats": seats, "effective": "period_end"}
    return await api.call("POST", "acme", "/removals", user=user, json=body, key=key)


async def cancel(api: Api, user: str = "alice") -> httpx.Response:
    return await api.call("DELETE", "acme", "/scheduled-change", user=user)


async def active_with_agents(api: Api, seats: int, agents: int) -> list[str]:
    assert (await api.buy(seats)).status_code == 201
    users = await api.add_users(agents + 2, prefix="agent")
    for user_id in users[:agents]:
        assert (await api.assign(user_id)).status_code == 201
    return users


def scheduled(seats: int) -> dict[str, Any]:
    return {"seats": seats, "effective_at": EFFECTIVE_AT}


async def test_r15_the_primary_admin_may_schedule_a_lower_total_for_the_end_of_the_paid_period(
    api: Api,
) -> None:
    await active_with_agents(api, seats=25, agents=3)
    problem(await schedule(api, 10, user="bob"), 403, "not_primary_admin")
    r = await schedule(api, 10)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert (summary["seats"], summary["assigned"]) == (25, 3)
    assert summary["scheduled_change"] == scheduled(10)
    assert await api.summary() == summary
    event = (await events(api))[0]
    assert (event["type"], event["actor"]) == ("seats.decrease_scheduled", "user:alice")
    assert event["data"] == {
        "seats": 25,
        "scheduled_seats": 10,
        "effective_at": EFFECTIVE_AT,
        "replaced_seats": None,
    }


async def test_r15_now_is_the_default_and_keeps_r7(api: Api) -> None:
    assert (await api.buy(25)).status_code == 201
    r = await api.call(
        "POST", "acme", "/removals", user="alice", json={"seats": 20, "effective": "now"}
    )
    assert (r.status_code, r.json()["seats"], r.json()["scheduled_change"]) == (200, 20, None)
    r = await api.remove(15)
    assert (r.status_code, r.json()["seats"], r.json()["scheduled_change"]) == (200, 15, None)
    assert [e["type"] for e in (await events(api))[:2]] == ["seats.removed", "seats.removed"]


async def test_r15_r4_applies_when_it_is_scheduled(api: Api) -> None:
    await active_with_agents(api, seats=25, agents=4)
    before = (await api.summary(), await events(api))
    assert problem(await schedule(api, 3), 409, "seats_assigned")["assigned"] == 4
    assert problem(await schedule(api, 25), 409, "not_a_decrease")["current"] == 25
    assert (await api.summary(), await events(api)) == before
    assert (await schedule(api, 4)).status_code == 200


async def test_r15_the_account_keeps_and_may_use_its_current_seats_until_then(api: Api) -> None:
    users = await active_with_agents(api, seats=5, agents=2)
    assert (await schedule(api, 3)).status_code == 200
    summary = await api.summary()
    assert (summary["seats"], summary["available"]) == (5, 1)
    assert (summary["monthly_total"], summary["status"]) == (5 * 1900, "active")
    assert (await api.assign(users[2])).status_code == 201
    for user_id in users[:3]:
        r = await api.call("GET", "acme", f"/agents/{user_id}", user="carol")
        assert r.json()["active"] is True


async def test_r15_assigning_beyond_n_is_refused_with_seats_scheduled_for_removal(
    api: Api,
) -> None:
    users = await active_with_agents(api, seats=5, agents=3)
    assert (await schedule(api, 3)).status_code == 200
    before = await events(api)
    body = problem(await api.assign(users[3]), 409, "seats_scheduled_for_removal")
    assert (body["scheduled_seats"], body["effective_at"]) == (3, EFFECTIVE_AT)
    assert await events(api) == before
    assert (await api.unassign(users[0])).status_code == 204
    assert (await api.assign(users[3])).status_code == 201


async def test_r15_the_plans_seats_become_n_at_that_instant_before_any_billing_run(
    api: Api,
) -> None:
    users = await active_with_agents(api, seats=25, agents=3)
    assert (await schedule(api, 10)).status_code == 200
    await api.set_clock(END - timedelta(seconds=1))
    summary = await api.summary()
    assert (summary["seats"], summary["scheduled_change"]) == (25, scheduled(10))
    await api.set_clock(END)
    summary = await api.summary()
    assert (summary["seats"], summary["available"], summary["scheduled_change"]) == (10, 7, None)
    assert summary["monthly_total"] == 10 * 1900
    for user_id in users[:3]:
        r = await api.call("GET", "acme", f"/agents/{user_id}", user="carol")
        assert r.json() == {"user_id": user_id, "agent": True, "active": True}
    assert len(await invoices(api)) == 1  # no run has recorded anything


async def test_r15_the_next_renewal_invoices_n_seats(api: Api) -> None:
    await active_with_agents(api, seats=25, agents=3)
    assert (await schedule(api, 10)).status_code == 200
    await api.set_clock(END)
    report = await billing_run(api)
    assert report["renewals_invoiced"] == 1
    renewal = (await invoices(api))[0]
    assert (renewal["kind"], renewal["status"], renewal["total"]) == ("renewal", "paid", 19000)
    assert renewal["lines"][0]["quantity"] == 10
    line = renewal["lines"][0]
    assert (line["seats_before"], line["seats_after"]) == (25, 10)  # the line says the decrease
    assert "25 → 10" in line["description"]
    types = [e["type"] for e in await events(api)]
    assert types.index("seats.decreased") > types.index("plan.renewed")  # newest first
    [decreased] = [e for e in await events(api) if e["type"] == "seats.decreased"]
    assert decreased["data"] == {
        "seats_before": 25,
        "seats_after": 10,
        "effective_at": EFFECTIVE_AT,
    }
    assert decreased["actor"] == "system:billing"
    summary = await api.summary()
    assert (summary["seats"], summary["scheduled_change"]) == (10, None)
    assert summary["current_period"] == {"start": "2026-12-01", "end": "2027-01-01"}


async def test_r15_one_schedule_at_a_time_a_new_one_replaces_it(api: Api) -> None:
    assert (await api.buy(25)).status_code == 201
    assert (await schedule(api, 10)).status_code == 200
    r = await schedule(api, 15)
    assert r.json()["scheduled_change"] == scheduled(15)
    assert (await events(api))[0]["data"]["replaced_seats"] == 10
    await api.set_clock(END)
    await billing_run(api)
    assert (await invoices(api))[0]["total"] == 15 * 1900


async def test_r15_delete_scheduled_change_cancels_it(api: Api) -> None:
    assert (await api.buy(25)).status_code == 201
    assert (await schedule(api, 10)).status_code == 200
    problem(await cancel(api, user="bob"), 403, "not_primary_admin")
    r = await cancel(api)
    assert r.status_code == 204, r.text
    assert (await api.summary())["scheduled_change"] is None
    event = (await events(api))[0]
    assert (event["type"], event["actor"]) == ("seats.decrease_canceled", "user:alice")
    assert event["data"] == {
        "seats": 25,
        "scheduled_seats": 10,
        "effective_at": EFFECTIVE_AT,
        "reason": "canceled",
    }
    # Nothing left to cancel: said so (a decrease that already took effect cannot be undone).
    problem(await cancel(api), 404, "no_scheduled_change")
    await api.set_clock(END)
    await billing_run(api)
    assert (await invoices(api))[0]["total"] == 25 * 1900


async def test_r15_a_purchase_cancels_it(api: Api) -> None:
    assert (await api.buy(25)).status_code == 201
    assert (await schedule(api, 10)).status_code == 200
    r = await api.buy(30)
    assert r.status_code == 201, r.text
    assert (r.json()["summary"]["seats"], r.json()["summary"]["scheduled_change"]) == (30, None)
    canceled = [e for e in await events(api) if e["type"] == "seats.decrease_canceled"]
    assert [e["data"]["reason"] for e in canceled] == ["purchase"]
    await api.set_clock(END)
    await billing_run(api)
    assert (await invoices(api))[0]["total"] == 30 * 1900


async def test_r15_a_declined_purchase_leaves_the_schedule(api: Api) -> None:
    assert (await api.buy(25)).status_code == 201
    assert (await schedule(api, 10)).status_code == 200
    assert (await api.put_account("acme", payment_method="pm_decline_card")).status_code == 200
    problem(await api.buy(30), 402, "payment_declined")
    assert (await api.summary())["scheduled_change"] == scheduled(10)


async def test_r15_a_pending_purchase_holds_the_decrease_until_it_is_settled(api: Api) -> None:
    assert (await api.buy(25)).status_code == 201
    assert (await schedule(api, 10)).status_code == 200
    assert (await api.put_account("acme", payment_method="pm_unavailable")).status_code == 200
    problem(await api.buy(30), 503, "payment_pending")
    problem(await schedule(api, 5), 409, "purchase_in_progress")
    await api.set_clock(END)
    # The purchase may still raise the total: neither it nor the decrease is half-applied.
    summary = await api.summary()
    assert (summary["seats"], summary["scheduled_change"]) == (25, scheduled(10))
    # No answer for 23 hours: the run voids it (R14), then the renewal goes ahead with the
    # decrease, which the purchase never canceled.
    report = await billing_run(api)
    assert (report["purchases_voided"], report["renewals_invoiced"]) == (1, 1)
    summary = await api.summary()
    assert (summary["seats"], summary["scheduled_change"]) == (10, None)
    renewal = (await invoices(api))[0]
    assert (renewal["kind"], renewal["total"]) == ("renewal", 19000)


async def test_r15_scheduling_in_a_trial_is_no_paid_period(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    before = (await api.summary(), await events(api))
    problem(await schedule(api, 5), 409, "no_paid_period")
    assert (await api.summary(), await events(api)) == before
    problem(await cancel(api), 404, "no_scheduled_change")


async def test_r15_idempotency_as_for_removals(api: Api) -> None:
    assert (await api.buy(25)).status_code == 201
    first = await schedule(api, 10, key="sched-1")
    again = await schedule(api, 10, key="sched-1")
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    problem(await schedule(api, 12, key="sched-1"), 422, "idempotency_key_reused")
    types = [e["type"] for e in await events(api)]
    assert types.count("seats.decrease_scheduled") == 1


async def test_r15_quotes_for_a_decrease_show_what_changes_now_and_the_next_renewal(
    api: Api,
) -> None:
    assert (await api.buy(25)).status_code == 201
    r = await api.call("GET", "acme", "/quote-preview?seats=10&effective=period_end", user="bob")
    assert r.status_code == 200, r.text
    later = r.json()
    assert (later["current_seats"], later["seats"], later["due_now"]) == (25, 10, 0)
    assert (later["effective"], later["effective_at"]) == ("period_end", EFFECTIVE_AT)
    assert (later["next_renewal_at"], later["next_renewal_total"]) == (EFFECTIVE_AT, 19000)
    r = await api.call("GET", "acme", "/quote-preview?seats=10", user="bob")
    now = r.json()
    assert (now["effective"], now["effective_at"]) == ("now", "2026-11-21T12:00:00Z")
    assert now["next_renewal_total"] == 19000
    r = await api.call(
        "POST", "acme", "/quotes", user="bob", json={"seats": 10, "effective": "period_end"}
    )
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in later} == later
    # An increase: charged now, and the next renewal at the new total.
    up = (await api.call("GET", "acme", "/quote-preview?seats=30", user="bob")).json()
    assert (up["effective"], up["next_renewal_total"]) == ("now", 30 * 1900)
    problem(
        await api.call("GET", "acme", "/quote-preview?seats=30&effective=period_end", user="bob"),
        409,
        "not_a_decrease",
    )


async def test_r15_a_quote_for_the_period_end_in_a_trial_is_no_paid_period(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    r = await api.call("GET", "acme", "/quote-preview?seats=5&effective=period_end", user="bob")
    problem(r, 409, "no_paid_period")


async def test_r15_r12_the_decrease_applies_at_the_end_of_the_period_the_plan_was_billed_under(
    api: Api,
) -> None:
    assert (await api.buy(25)).status_code == 201
    assert (await schedule(api, 10)).status_code == 200
    assert (await api.put_account("acme", billing_anchor="2026-11-15")).status_code == 200
    assert (await api.summary())["scheduled_change"] == scheduled(10)
    await api.set_clock(END)
    assert (await api.summary())["seats"] == 10
    await billing_run(api)
    renewal = (await invoices(api))[0]
    # A bridge of 14 days of 2026-11-15..2026-12-15, for the 10 seats (§3's example).
    assert (renewal["total"], renewal["lines"][0]["quantity"]) == (8867, 10)


async def test_r15_an_unpaid_renewal_still_bills_n_seats_and_the_plan_keeps_n(api: Api) -> None:
    await active_with_agents(api, seats=25, agents=2)
    assert (await schedule(api, 10)).status_code == 200
    assert (await api.put_account("acme", payment_method="pm_decline_card")).status_code == 200
    await api.set_clock(END)
    await billing_run(api)
    renewal = (await invoices(api))[0]
    assert (renewal["status"], renewal["total"]) == ("pending", 19000)
    summary = await api.summary()
    assert (summary["status"], summary["seats"], summary["scheduled_change"]) == (
        "past_due",
        10,
        None,
    )


async def test_r15_a_removal_now_below_the_schedule_replaces_it(api: Api) -> None:
    assert (await api.buy(25)).status_code == 201
    assert (await schedule(api, 10)).status_code == 200
    r = await api.remove(20)
    assert (r.json()["seats"], r.json()["scheduled_change"]) == (20, scheduled(10))
    r = await api.remove(8)
    assert (r.json()["seats"], r.json()["scheduled_change"]) == (8, None)
    canceled = [e for e in await events(api) if e["type"] == "seats.decrease_canceled"]
    assert [e["data"]["reason"] for e in canceled] == ["removed"]
