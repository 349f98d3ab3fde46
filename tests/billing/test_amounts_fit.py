"""R18 "Every amount fits": every amount the service can bill fits the ledger's column (a
signed 64-bit integer), for every price the settings accept, every seat total a request
accepts, both cycles and any date; a price for which that could fail refuses to start.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.billing.periods import BillingCycle, period_containing, renewal_after
from app.billing.pricing import MAX_AMOUNT, MAX_PRICE, MAX_SEATS, price_change, renewal_amount
from app.config import Settings
from app.errors import AmountOutOfRange
from tests.conftest import SECRET

BIGINT = 2**63 - 1

prices = st.integers(min_value=0, max_value=MAX_PRICE)
seat_totals = st.integers(min_value=0, max_value=MAX_SEATS)
cycles = st.sampled_from(list(BillingCycle))
dates = st.dates(min_value=date(1, 1, 1), max_value=date(9990, 1, 1))


def test_r18_the_bound_is_a_billion_seats_for_twelve_months_in_a_bigint() -> None:
    assert MAX_AMOUNT == BIGINT
    assert MAX_PRICE * MAX_SEATS * 12 <= BIGINT < (MAX_PRICE + 1) * MAX_SEATS * 12


@settings(max_examples=50, deadline=None)
@given(
    price=st.one_of(
        st.just(MAX_PRICE + 1),
        st.just(1_200_000_000),
        st.integers(min_value=MAX_PRICE + 1, max_value=10**30),
    )
)
def test_r18_settings_refuse_a_price_whose_amounts_cannot_fit(price: int) -> None:
    with pytest.raises(ValidationError, match="SEATS_PRICES"):
        Settings(jwt_secret=SECRET, prices={"USD": 1900, "IRR": price})
    with pytest.raises(ValidationError, match="SEATS_PRICE_MONTHLY"):
        Settings(jwt_secret=SECRET, price_monthly=price)


@settings(max_examples=50, deadline=None)
@given(price=st.one_of(st.just(MAX_PRICE), prices))
def test_r18_settings_accept_every_price_that_fits(price: int) -> None:
    assert Settings(jwt_secret=SECRET, prices={"IRR": price}).price_for("IRR") == price


@settings(max_examples=200, deadline=None)
@given(
    price=prices,
    current=seat_totals,
    seats=seat_totals,
    paid=seat_totals,
    cycle=cycles,
    anchor=dates,
    offset=st.integers(min_value=0, max_value=400),
)
def test_r18_every_purchase_and_quote_amount_fits_a_bigint(
    price: int, current: int, seats: int, paid: int, cycle: BillingCycle, anchor: date, offset: int
) -> None:
    today = anchor + timedelta(days=offset)
    period = period_containing(anchor, cycle, today)
    change = price_change(
        current_seats=current,
        seats=seats,
        paid_seats=min(paid, current),
        unit_price=price,
        cycle=cycle,
        period=period,
        today=today,
    )
    for amount in (change.monthly_total, change.cycle_total, change.due_now, price * cycle.months):
        assert 0 <= amount <= BIGINT


@settings(max_examples=200, deadline=None)
@given(
    price=prices,
    seats=seat_totals,
    old_cycle=cycles,
    new_cycle=cycles,
    old_anchor=dates,
    new_anchor=dates,
    offset=st.integers(min_value=0, max_value=400),
)
def test_r18_every_renewal_amount_fits_a_bigint(
    price: int,
    seats: int,
    old_cycle: BillingCycle,
    new_cycle: BillingCycle,
    old_anchor: date,
    new_anchor: date,
    offset: int,
) -> None:
    old = period_containing(old_anchor, old_cycle, old_anchor + timedelta(days=offset))
    renewal = renewal_after(new_anchor, new_cycle, old)
    assert 0 <= renewal_amount(seats, price, new_cycle, renewal) <= BIGINT


@settings(max_examples=200, deadline=None)
@given(
    price=st.integers(min_value=MAX_PRICE + 1, max_value=10**12),
    today=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
)
def test_r18_an_amount_that_cannot_fit_is_refused_not_produced(price: int, today: date) -> None:
    """Past the start-up check (a price changed under a running process): refused, never
    an amount the ledger cannot hold."""
    period = period_containing(today, BillingCycle.YEARLY, today)
    with pytest.raises(AmountOutOfRange):
        price_change(
            current_seats=0,
            seats=MAX_SEATS,
            paid_seats=0,
            unit_price=price,
            cycle=BillingCycle.YEARLY,
            period=period,
            today=today,
        )
    renewal = renewal_after(today, BillingCycle.YEARLY, period)
    with pytest.raises(AmountOutOfRange):
        renewal_amount(MAX_SEATS, price, BillingCycle.YEARLY, renewal)
