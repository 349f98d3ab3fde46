"""R18 "Every amount fits", through the API: a total whose amounts cannot fit the ledger's
column (a price changed past the start-up check, as an operator's mistake would) is refused
with ``422 amount_out_of_range``, never a 500 nor a number the ledger cannot hold, and
nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.billing.pricing import MAX_SEATS
from app.config import Settings
from tests.conftest import Api, problem

Sql = Callable[..., Any]


async def test_r18_totals_that_cannot_fit_are_refused_with_422(
    api: Api, settings: Settings, sql: Sql
) -> None:
    # globex is yearly; a price of 1,200,000,000 a month makes a billion seats 1.44e19 a year.
    settings.prices = {**settings.prices, "USD": 1_200_000_000}
    seats = {"seats": MAX_SEATS}

    r = await api.call("GET", "globex", f"/quote-preview?seats={MAX_SEATS}", user="gina")
    problem(r, 422, "amount_out_of_range")
    r = await api.call("POST", "globex", "/quotes", user="gina", json=seats, key="q1")
    problem(r, 422, "amount_out_of_range")
    r = await api.buy(MAX_SEATS, account_id="globex", user="gina")
    problem(r, 422, "amount_out_of_range")

    assert await sql("SELECT id FROM invoice") == []
    assert await sql("SELECT id FROM quote") == []
    [(status, plan_seats)] = await sql("SELECT status, seats FROM plan WHERE account_id = 'globex'")
    assert (status, plan_seats) == ("none", 0)
    # A total that fits is priced as usual.
    r = await api.call("GET", "globex", "/quote-preview?seats=7", user="gina")
    assert r.status_code == 200, r.text
