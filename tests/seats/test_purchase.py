"""R6 purchases (prorated, charged now, nothing changes on a decline), R2 no cap, R10 expiry,
quotes confirmed by a purchase (R8) and the gateway's failure modes (SPEC §6)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.conftest import NOW, Api, problem
from tests.seats.helpers import billing_run, events, invoices


def due_now(seats: int, months: int, start: date, end: date, today: date) -> int:
    """SPEC §3, in integers, rounded half up."""
    numerator = seats * 1900 * months * (end - today).days
    denominator = (end - start).days
    return (2 * numerator + denominator) // (2 * denominator)


async def quote(api: Api, seats: int) -> dict[str, Any]:
    r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": seats})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def agent(api: Api, user_id: str) -> dict[str, Any]:
    r = await api.call("GET", "acme", f"/agents/{user_id}", user="carol")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --- R6: the purchase ----------------------------------------------------------------------


async def test_r6_purchase_spec_example(api: Api) -> None:
    r = await api.buy(5)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"summary", "invoice"}
    invoice = body["invoice"]
    assert invoice["id"].startswith("inv_")
    assert (invoice["kind"], invoice["status"], invoice["currency"]) == ("purchase", "paid", "USD")
    assert invoice["total"] == 3167  # round(5 * 1900 * 10 / 30), SPEC §3
    assert isinstance(invoice["charge_id"], str) and invoice["charge_id"]
    assert datetime.fromisoformat(invoice["paid_at"]) == NOW
    assert datetime.fromisoformat(invoice["created_at"]) == NOW
    assert invoice["failure_reason"] is None
    [line] = invoice["lines"]
    assert {k: v for k, v in line.items() if k != "description"} == {
        "quantity": 5,
        "unit_price": 1900,
        "amount": 3167,
        "period_start": "2026-11-21",
        "period_end": "2026-12-01",
        "seats_before": 0,
        "seats_after": 5,
        "days": 10,
        "days_in_period": 30,
    }
    assert line["description"].startswith("Conversations seats 0 → 5, monthly, 10 of 30 days")

    summary = body["summary"]
    assert summary["status"] == "active"
    assert (summary["seats"], summary["assigned"], summary["available"]) == (5, 0, 5)
    assert summary["current_period"] == {"start": "2026-11-01", "end": "2026-12-01"}
    assert datetime.fromisoformat(summary["next_renewal_at"]) == datetime(2026, 12, 1, tzinfo=UTC)
    assert (summary["monthly_total"], summary["cycle_total"]) == (9500, 9500)
    assert await api.summary() == summary

    assert await invoices(api) == [invoice]
    r = await api.call("GET", "acme", f"/invoices/{invoice['id']}", user="bob")
    assert r.json() == invoice
    [event] = await events(api)
    assert (event["type"], event["actor"]) == ("seats.purchased", "user:alice")
    assert event["data"] == {
        "seats_before": 0,
        "seats_after": 5,
        "invoice_id": invoice["id"],
        "amount": 3167,
    }


async def test_r6_purchase_out_of_a_trial_charges_all_seats(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    r = await api.buy(5)
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["total"] == 3167
    assert r.json()["invoice"]["lines"][0]["quantity"] == 5
    summary = await api.summary()
    assert (summary["status"], summary["seats"]) == ("active", 5)
    assert summary["current_period"] == {"start": "2026-11-01", "end": "2026-12-01"}


async def test_r6_purchase_on_active_plan_charges_only_added_seats_prorated(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    await api.set_clock(NOW + timedelta(days=3))  # 2026-11-24: 7 of 30 days left
    r = await api.buy(9)
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    expected = due_now(4, 1, date(2026, 11, 1), date(2026, 12, 1), date(2026, 11, 24))
    assert invoice["total"] == expected == 1773  # 4 * 1900 * 7 / 30 = 1773.33
    [line] = invoice["lines"]
    assert (line["quantity"], line["amount"]) == (4, expected)
    assert (line["period_start"], line["period_end"]) == ("2026-11-24", "2026-12-01")
    summary = r.json()["summary"]
    assert summary["seats"] == 9
    assert summary["current_period"] == {"start": "2026-11-01", "end": "2026-12-01"}
    assert [i["total"] for i in await invoices(api)] == [1773, 3167]


async def test_r6_yearly_purchase_to_the_cent(api: Api) -> None:
    r = await api.buy(5, account_id="globex", user="gina")
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    expected = due_now(5, 12, date(2026, 3, 15), date(2027, 3, 15), date(2026, 11, 21))
    # By hand: 114 of 365 days left; 5 * 1900 * 12 * 114 / 365 = 35,605.479... -> 35605.
    assert invoice["total"] == expected == 35605
    [line] = invoice["lines"]
    assert (line["quantity"], line["unit_price"], line["amount"]) == (5, 1900 * 12, 35605)
    summary = r.json()["summary"]
    assert summary["current_period"] == {"start": "2026-03-15", "end": "2027-03-15"}
    assert (summary["monthly_total"], summary["cycle_total"]) == (9500, 114000)
    assert datetime.fromisoformat(summary["next_renewal_at"]) == datetime(2027, 3, 15, tzinfo=UTC)


async def test_r2_no_cap_on_seats(api: Api) -> None:
    r = await api.buy(10_000)
    assert r.status_code == 201, r.text
    first = r.json()["invoice"]["total"]
    # 10,000 * 1900 * 10 / 30 = 6,333,333.33
    assert first == due_now(10_000, 1, date(2026, 11, 1), date(2026, 12, 1), NOW.date())
    assert first == 6_333_333
    r = await api.buy(250_000)
    assert r.status_code == 201, r.text
    second = r.json()["invoice"]["total"]
    # 240,000 added * 1900 * 10 / 30 = 152,000,000 exactly
    assert second == due_now(240_000, 1, date(2026, 11, 1), date(2026, 12, 1), NOW.date())
    assert second == 152_000_000
    assert type(first) is int and type(second) is int
    summary = await api.summary()
    assert (summary["seats"], summary["available"]) == (250_000, 250_000)
    assert summary["monthly_total"] == 250_000 * 1900


async def test_r6_purchase_must_raise_the_total(api: Api) -> None:
    problem(await api.buy(0), 409, "not_an_increase")
    assert (await api.buy(5)).status_code == 201
    summary = await api.summary()
    for seats in (5, 4, 0):
        body = problem(await api.buy(seats), 409, "not_an_increase")
        assert body["current"] == 5
    assert await api.summary() == summary
    assert len(await invoices(api)) == 1


async def test_r6_purchase_converting_a_trial_must_cover_its_agents(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    for user_id in ("alice", "bob", "carol"):
        assert (await api.assign(user_id)).status_code == 201
    summary = await api.summary()
    body = problem(await api.buy(2), 409, "seats_assigned")
    assert body["assigned"] == 3
    assert await api.summary() == summary
    assert await invoices(api) == []
    r = await api.buy(3)
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["total"] == due_now(
        3, 1, date(2026, 11, 1), date(2026, 12, 1), NOW.date()
    )
    summary = r.json()["summary"]
    assert (summary["status"], summary["seats"], summary["assigned"]) == ("active", 3, 3)
    assert summary["available"] == 0
    assert (await agent(api, "bob"))["active"] is True


async def test_r9_renewal_due_before_the_billing_run(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    await api.set_clock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    # The period ended and was not renewed yet: pricing now would charge the seats twice.
    problem(await api.buy(6), 409, "renewal_due")
    assert len(await invoices(api)) == 1
    await billing_run(api)
    r = await api.buy(6)
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["lines"][0]["period_end"] == "2027-01-01"


# --- R10: after the trial ------------------------------------------------------------------


async def expire_trial_with_agents(api: Api) -> datetime:
    assert (await api.start_trial()).status_code == 201
    for user_id in ("alice", "bob", "carol"):
        assert (await api.assign(user_id)).status_code == 201
    later = NOW + timedelta(days=14, minutes=1)
    await api.set_clock(later)
    assert (await billing_run(api))["trials_expired"] == 1
    return later


async def test_r10_expired_trial_keeps_agents_without_access(api: Api) -> None:
    await expire_trial_with_agents(api)
    summary = await api.summary()
    assert summary["status"] == "trial_expired"
    assert (summary["seats"], summary["assigned"], summary["available"]) == (0, 3, 0)
    r = await api.call("GET", "acme", "/agents", user="carol")
    assert {a["user_id"] for a in r.json()["data"]} == {"alice", "bob", "carol"}
    for user_id in ("alice", "bob", "carol"):
        assert await agent(api, user_id) == {"user_id": user_id, "agent": True, "active": False}
    [expired, *_] = await events(api)
    assert (expired["type"], expired["actor"]) == ("trial.expired", "system:billing")
    assert expired["data"] == {"seats_before": 20, "seats_after": 0, "assigned": 3}


async def test_r10_purchase_covering_kept_agents_restores_access(api: Api) -> None:
    later = await expire_trial_with_agents(api)
    r = await api.buy(3)
    assert r.status_code == 201, r.text
    # 2026-12-05: the anchor period 2026-12-01..2027-01-01 (31 days), 27 days left.
    expected = due_now(3, 1, date(2026, 12, 1), date(2027, 1, 1), later.date())
    assert r.json()["invoice"]["total"] == expected == 4965  # 153,900 / 31 = 4964.52
    summary = r.json()["summary"]
    assert (summary["status"], summary["seats"], summary["assigned"]) == ("active", 3, 3)
    assert summary["current_period"] == {"start": "2026-12-01", "end": "2027-01-01"}
    for user_id in ("alice", "bob", "carol"):
        assert await agent(api, user_id) == {"user_id": user_id, "agent": True, "active": True}


async def test_r10_purchase_below_kept_agents_is_refused(api: Api) -> None:
    await expire_trial_with_agents(api)
    summary = await api.summary()
    body = problem(await api.buy(2), 409, "seats_assigned")
    assert body["assigned"] == 3
    assert await api.summary() == summary
    assert await invoices(api) == []
    assert (await agent(api, "carol"))["active"] is False


# --- R8: a purchase confirms a quote -------------------------------------------------------


async def test_r8_purchase_with_a_valid_quote(api: Api) -> None:
    q = await quote(api, 5)
    r = await api.buy(5, quote_id=q["id"])
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["total"] == q["due_now"] == 3167


async def test_r8_quote_stale_after_the_day_changes(api: Api) -> None:
    await api.set_clock(datetime(2026, 11, 21, 23, 55, tzinfo=UTC))
    q = await quote(api, 5)
    assert q["due_now"] == 3167
    # Ten minutes later (not expired) but a day fewer to prorate: the amount changed.
    await api.set_clock(datetime(2026, 11, 22, 0, 5, tzinfo=UTC))
    problem(await api.buy(5, quote_id=q["id"]), 409, "quote_stale")
    assert await invoices(api) == []
    assert (await api.summary())["status"] == "none"
    r = await api.buy(5)
    assert r.json()["invoice"]["total"] == 2850 != q["due_now"]  # 5 * 1900 * 9 / 30


async def test_r8_quote_stale_after_another_change_of_seats(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    q = await quote(api, 10)
    assert (await api.buy(6)).status_code == 201
    problem(await api.buy(10, quote_id=q["id"]), 409, "quote_stale")
    assert [i["lines"][0]["quantity"] for i in await invoices(api)] == [1, 5]
    assert (await api.summary())["seats"] == 6


async def test_r8_quote_stale_for_another_total(api: Api) -> None:
    q = await quote(api, 5)
    problem(await api.buy(6, quote_id=q["id"]), 409, "quote_stale")
    assert await invoices(api) == []


async def test_r8_quote_expires_after_15_minutes(api: Api) -> None:
    q = await quote(api, 5)
    await api.set_clock(NOW + timedelta(minutes=15))
    problem(await api.buy(5, quote_id=q["id"]), 409, "quote_stale")
    assert await invoices(api) == []
    fresh = await quote(api, 5)
    await api.set_clock(NOW + timedelta(minutes=29, seconds=59))
    r = await api.buy(5, quote_id=fresh["id"])
    assert r.status_code == 201, r.text


async def test_r8_unknown_quote(api: Api) -> None:
    problem(await api.buy(5, quote_id="quo_" + "0" * 26), 404, "quote_not_found")
    r = await api.call("POST", "globex", "/quotes", user="gina", json={"seats": 5})
    assert r.status_code == 201
    # Another account's quote is as unknown as one that never existed.
    problem(await api.buy(5, quote_id=r.json()["id"]), 404, "quote_not_found")
    problem(await api.buy(5, quote_id="not-a-quote"), 422, "validation_error")
    assert await invoices(api) == []


# --- R6 and SPEC §6: when the charge fails -------------------------------------------------


async def test_r6_declined_card_changes_nothing_but_a_failed_invoice(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    assert (await api.put_account("acme", payment_method="pm_decline_card")).status_code == 200
    summary = await api.summary()
    body = problem(await api.buy(8), 402, "payment_declined")
    assert await api.summary() == summary
    failed, paid = await invoices(api)
    assert failed["id"] == body["invoice_id"]
    assert (failed["status"], failed["total"]) == ("failed", 1900)  # 3 * 1900 * 10 / 30
    assert (failed["paid_at"], failed["charge_id"]) == (None, None)
    assert failed["failure_reason"]
    assert paid["status"] == "paid"
    declined = (await events(api))[0]
    assert (declined["type"], declined["actor"]) == ("purchase.declined", "user:alice")
    assert declined["data"]["invoice_id"] == failed["id"]
    assert declined["data"]["seats"] == 8
    # Nothing is left waiting: with a good card the same purchase goes through.
    assert (await api.put_account("acme", payment_method="pm_card_visa")).status_code == 200
    r = await api.buy(8)
    assert r.status_code == 201, r.text
    assert r.json()["summary"]["seats"] == 8


async def test_r6_gateway_down_leaves_the_purchase_pending(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    assert (await api.put_account("acme", payment_method="pm_unavailable")).status_code == 200
    summary = await api.summary()
    key = uuid.uuid4().hex
    r = await api.buy(8, key=key)
    body = problem(r, 503, "payment_pending")
    assert r.headers["Retry-After"]
    pending_id = body["invoice_id"]
    pending, paid = await invoices(api)
    paid_id = paid["id"]
    assert (pending["id"], pending["status"], pending["paid_at"]) == (pending_id, "pending", None)
    assert await api.summary() == summary

    problem(await api.buy(9), 409, "purchase_in_progress")
    problem(await api.remove(3), 409, "purchase_in_progress")
    assert await api.summary() == summary

    # A retry with the same key resumes the same invoice, still unanswered.
    assert problem(await api.buy(8, key=key), 503, "payment_pending")["invoice_id"] == pending_id
    report = await billing_run(api)
    assert (report["charges_unavailable"], report["purchases_completed"]) == (1, 0)
    # The invoice keeps the payment method it was made with: a new card on the account does
    # not reach it, and still no second invoice is made.
    assert (await api.put_account("acme", payment_method="pm_card_visa")).status_code == 200
    assert problem(await api.buy(8, key=key), 503, "payment_pending")["invoice_id"] == pending_id
    assert [(i["id"], i["status"]) for i in await invoices(api)] == [
        (pending_id, "pending"),
        (paid_id, "paid"),
    ]
    # Nothing changed but the account's card, which the summary shows its admins.
    assert await api.summary() == {**summary, "payment_method": "pm_card_visa"}
    assert [e["type"] for e in await events(api)] == ["seats.purchased"]
