"""R8: a quote prices a new total (up or down); it charges nothing and changes nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import NOW, Api, problem

QUOTE_FIELDS = {
    "effective",
    "effective_at",
    "next_renewal_at",
    "next_renewal_total",
    "id",
    "expires_at",
    "current_seats",
    "seats",
    "change",
    "currency",
    "unit_price",
    "billing_cycle",
    "monthly_total",
    "cycle_total",
    "due_now",
    "proration",
    "allowed",
    "assigned",
}
PRORATION_FIELDS = {"period_start", "period_end", "days_remaining", "days_in_period"}


def due_now(seats: int, months: int, start: date, end: date, today: date) -> int:
    """SPEC §3, in integers, rounded half up."""
    numerator = seats * 1900 * months * (end - today).days
    denominator = (end - start).days
    return (2 * numerator + denominator) // (2 * denominator)


async def quote(api: Api, seats: int, account_id: str = "acme", user: str = "alice") -> Any:
    r = await api.call("POST", account_id, "/quotes", user=user, json={"seats": seats})
    assert r.status_code == 201, r.text
    return r.json()


async def snapshot(api: Api, account_id: str = "acme") -> tuple[Any, ...]:
    """What a quote must not change: the plan, the ledger and the audit log."""
    invoices = await api.call("GET", account_id, "/invoices?limit=100")
    events = await api.call("GET", account_id, "/events?limit=100")
    agents = await api.call("GET", account_id, "/agents?limit=100")
    return (
        await api.summary(account_id, "gina" if account_id == "globex" else "alice"),
        invoices.json(),
        events.json(),
        agents.json(),
    )


async def test_r8_quote_spec_example(api: Api) -> None:
    body = await quote(api, 5)
    assert body["id"].startswith("quo_")
    assert {k: v for k, v in body.items() if k not in ("id", "expires_at")} == {
        "current_seats": 0,
        "seats": 5,
        "change": 5,
        "currency": "USD",
        "unit_price": 1900,
        "billing_cycle": "monthly",
        "monthly_total": 5 * 1900,
        "cycle_total": 5 * 1900,
        "due_now": 3167,  # round(5 * 1900 * 10 / 30), SPEC §3
        "proration": {
            "period_start": "2026-11-01",
            "period_end": "2026-12-01",
            "days_remaining": 10,
            "days_in_period": 30,
        },
        "allowed": True,
        "assigned": 0,
        "effective": "now",
        "effective_at": "2026-11-21T12:00:00Z",
        "next_renewal_at": "2026-12-01T00:00:00Z",
        "next_renewal_total": 5 * 1900,
    }


async def test_r8_quote_fields_complete(api: Api) -> None:
    body = await quote(api, 5)
    assert set(body) == QUOTE_FIELDS
    assert set(body["proration"]) == PRORATION_FIELDS
    times = {"id", "expires_at", "effective", "effective_at", "next_renewal_at"}
    for field in QUOTE_FIELDS - {*times, "currency", "billing_cycle", "proration"}:
        if field != "allowed":
            assert type(body[field]) is int, field  # money and counts are integers


async def test_r8_quote_expires_in_15_minutes(api: Api) -> None:
    body = await quote(api, 5)
    assert datetime.fromisoformat(body["expires_at"]) == NOW + timedelta(minutes=15)


async def test_r8_quote_on_active_plan_prices_only_added_seats(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    body = await quote(api, 9)
    assert (body["current_seats"], body["seats"], body["change"]) == (5, 9, 4)
    expected = due_now(4, 1, date(2026, 11, 1), date(2026, 12, 1), date(2026, 11, 21))
    assert body["due_now"] == expected == 2533  # 4 * 1900 * 10 / 30 = 2533.33
    # The totals are for the whole new total, not just the added seats.
    assert (body["monthly_total"], body["cycle_total"]) == (9 * 1900, 9 * 1900)


async def test_r8_quote_out_of_a_trial_prices_all_seats(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    body = await quote(api, 5)
    # The trial's 20 seats are free: the 5 bought would all be charged.
    assert (body["current_seats"], body["seats"], body["change"]) == (20, 5, -15)
    assert body["due_now"] == 3167


async def test_r8_yearly_quote_to_the_cent(api: Api) -> None:
    body = await quote(api, 5, "globex", "gina")
    # Anchor 2026-03-15, today 2026-11-21: period 2026-03-15..2027-03-15 (365 days, 2027 is
    # not a leap year), 114 days left (10 in Nov, 31 Dec, 31 Jan, 28 Feb, 14 Mar).
    assert body["proration"] == {
        "period_start": "2026-03-15",
        "period_end": "2027-03-15",
        "days_remaining": 114,
        "days_in_period": 365,
    }
    expected = due_now(5, 12, date(2026, 3, 15), date(2027, 3, 15), date(2026, 11, 21))
    # By hand: 5 * 1900 * 12 * 114 / 365 = 12,996,000 / 365 = 35,605.479... -> 35605.
    assert expected == 35605
    assert body["due_now"] == expected
    assert body["billing_cycle"] == "yearly"
    assert (body["monthly_total"], body["cycle_total"]) == (5 * 1900, 5 * 1900 * 12)


async def test_r8_decrease_quote_charges_nothing(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    for user_id in ("alice", "bob", "carol", *(await api.add_users(1))):
        assert (await api.assign(user_id)).status_code == 201
    down = await quote(api, 6)
    assert (down["change"], down["due_now"]) == (-4, 0)
    assert (down["allowed"], down["assigned"]) == (True, 4)
    exactly = await quote(api, 4)
    assert (exactly["due_now"], exactly["allowed"]) == (0, True)
    below = await quote(api, 3)
    assert (below["due_now"], below["allowed"], below["assigned"]) == (0, False, 4)
    assert (below["monthly_total"], below["cycle_total"]) == (3 * 1900, 3 * 1900)


@pytest.mark.parametrize("plan", ["none", "trialing", "active"])
async def test_r8_quote_changes_nothing(api: Api, plan: str) -> None:
    if plan == "trialing":
        assert (await api.start_trial()).status_code == 201
    if plan == "active":
        assert (await api.buy(5)).status_code == 201
        assert (await api.assign("carol")).status_code == 201
    before = await snapshot(api)
    for seats in (0, 1, 5, 25, 10_000):
        await quote(api, seats)
        await quote(api, seats, user="bob")
    assert await snapshot(api) == before
    if plan != "active":
        assert before[1]["data"] == []  # and so no charge was ever made


async def test_r8_each_quote_is_a_new_quote(api: Api) -> None:
    first, second = await quote(api, 5), await quote(api, 5)
    assert first["id"] != second["id"]


async def test_r8_quote_needs_a_valid_total(api: Api) -> None:
    for body in ({"seats": -1}, {"seats": 1_000_000_001}, {"seats": "5"}, {"seats": 5.0}, {}):
        r = await api.call("POST", "acme", "/quotes", user="alice", json=body)
        assert problem(r, 422, "validation_error")["errors"], body


async def test_r8_quote_bound_is_not_a_cap(api: Api) -> None:
    body = await quote(api, 1_000_000_000)
    expected = due_now(1_000_000_000, 1, date(2026, 11, 1), date(2026, 12, 1), date(2026, 11, 21))
    assert body["due_now"] == expected == 633_333_333_333
