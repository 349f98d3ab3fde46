"""Proration by whole days, in integers (SPEC §3)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.billing.periods import BillingCycle, Period, period_containing
from app.billing.pricing import cycle_total
from app.billing.proration import Proration, prorate, proration_for, round_half_up

MONTHLY = BillingCycle.MONTHLY
YEARLY = BillingCycle.YEARLY

dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))
cycles = st.sampled_from(list(BillingCycle))
seat_counts = st.integers(min_value=0, max_value=1_000_000_000)
prices = st.integers(min_value=0, max_value=1_000_000)


# --- round_half_up --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 2, 3),
        (1, 2, 1),
        (3, 2, 2),
        (1, 3, 0),
        (2, 3, 1),
        (0, 7, 0),
        (6, 3, 2),
        (95_000, 30, 3167),
    ],
)
def test_round_half_up_rounds_exact_halves_up_and_others_to_nearest(
    numerator: int, denominator: int, expected: int
) -> None:
    assert round_half_up(numerator, denominator) == expected


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(-5, 2, -3), (-1, 2, -1), (-3, 2, -2), (-1, 3, 0), (-2, 3, -1)],
)
def test_round_half_up_is_symmetric_for_negative_numerators(
    numerator: int, denominator: int, expected: int
) -> None:
    assert round_half_up(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [0, -1, -30])
def test_round_half_up_rejects_a_denominator_that_is_not_positive(denominator: int) -> None:
    with pytest.raises(ValueError):
        round_half_up(1, denominator)


@given(
    numerator=st.integers(min_value=-(10**30), max_value=10**30),
    denominator=st.integers(min_value=1, max_value=10**12),
)
def test_round_half_up_is_within_half_of_the_exact_quotient(
    numerator: int, denominator: int
) -> None:
    result = round_half_up(numerator, denominator)
    # |result - n/d| <= 1/2, in integers.
    assert abs(2 * (result * denominator - numerator)) <= denominator
    assert round_half_up(-numerator, denominator) == -result


# --- proration_for --------------------------------------------------------------------------


def test_proration_counts_today_as_a_remaining_day() -> None:
    period = Period(date(2026, 11, 1), date(2026, 12, 1))
    assert proration_for(period, date(2026, 11, 21)) == Proration(
        date(2026, 11, 1), date(2026, 12, 1), 10, 30
    )
    assert proration_for(period, date(2026, 11, 30)).days_remaining == 1
    assert proration_for(period, date(2026, 11, 1)).days_remaining == 30


@pytest.mark.parametrize("today", [date(2026, 10, 31), date(2026, 12, 1), date(2027, 1, 15)])
def test_proration_outside_the_period_raises(today: date) -> None:
    period = Period(date(2026, 11, 1), date(2026, 12, 1))
    with pytest.raises(ValueError):
        proration_for(period, today)


# --- worked examples ------------------------------------------------------------------------


def test_spec_worked_example_3167() -> None:
    # Monthly, price 1900, period 2026-11-01..2026-12-01 (30 days), 5 seats bought 2026-11-21:
    # 10 days remain, round(5 * 1900 * 10 / 30) = round(3166.67) = 3167.
    anchor = date(2026, 11, 1)
    today = date(2026, 11, 21)
    period = period_containing(anchor, MONTHLY, today)
    assert period == Period(date(2026, 11, 1), date(2026, 12, 1))
    proration = proration_for(period, today)
    assert (proration.days_remaining, proration.days_in_period) == (10, 30)
    assert prorate(5, 1900, MONTHLY.months, proration) == 3167


def test_yearly_worked_example_33919() -> None:
    # Yearly, period 2026-03-15..2027-03-15 is 365 days (no 29 Feb in it).
    # 3 seats at 1900 bought 2026-09-15: remaining days
    #   Sep 15..30 = 16, Oct 31, Nov 30, Dec 31, Jan 31, Feb 28, Mar 1..14 = 14 -> 181.
    # due = round(3 * 1900 * 12 * 181 / 365) = round(12_380_400 / 365) = round(33918.904) = 33919.
    anchor = date(2026, 3, 15)
    today = date(2026, 9, 15)
    period = period_containing(anchor, YEARLY, today)
    assert period == Period(date(2026, 3, 15), date(2027, 3, 15))
    proration = proration_for(period, today)
    assert (proration.days_remaining, proration.days_in_period) == (181, 365)
    assert prorate(3, 1900, YEARLY.months, proration) == 33919


def test_last_day_of_period_charges_one_day() -> None:
    # round(1 * 1900 * 1 / 30) = round(63.33) = 63.
    period = Period(date(2026, 11, 1), date(2026, 12, 1))
    assert prorate(1, 1900, 1, proration_for(period, date(2026, 11, 30))) == 63


def test_exact_half_cent_rounds_up() -> None:
    # 1 seat at 1 cent for 1 of 2 days: 0.5 -> 1.
    period = Period(date(2026, 1, 1), date(2026, 1, 3))
    assert prorate(1, 1, 1, proration_for(period, date(2026, 1, 2))) == 1


def test_zero_seats_cost_nothing() -> None:
    period = Period(date(2026, 11, 1), date(2026, 12, 1))
    assert prorate(0, 1900, 1, proration_for(period, date(2026, 11, 1))) == 0


# --- properties -----------------------------------------------------------------------------


@st.composite
def periods_and_days(draw: st.DrawFn) -> tuple[BillingCycle, Period, date]:
    """A period of some cycle and a day inside it."""
    cycle = draw(cycles)
    period = period_containing(draw(dates), cycle, draw(dates))
    offset = draw(st.integers(min_value=0, max_value=period.days - 1))
    return cycle, period, period.start + timedelta(days=offset)


@settings(max_examples=200)
@given(case=periods_and_days(), seats=seat_counts, price=prices)
def test_prorating_the_whole_period_charges_the_full_cycle_price(
    case: tuple[BillingCycle, Period, date], seats: int, price: int
) -> None:
    cycle, period, _ = case
    full = prorate(seats, price, cycle.months, proration_for(period, period.start))
    assert full == seats * price * cycle.months == cycle_total(seats, price, cycle)


@settings(max_examples=200)
@given(case=periods_and_days(), seats=seat_counts, price=prices)
def test_proration_is_never_negative_nor_above_the_full_price(
    case: tuple[BillingCycle, Period, date], seats: int, price: int
) -> None:
    cycle, period, today = case
    due = prorate(seats, price, cycle.months, proration_for(period, today))
    assert 0 <= due <= cycle_total(seats, price, cycle)


@settings(max_examples=200)
@given(case=periods_and_days(), seats=seat_counts, price=prices)
def test_proration_does_not_decrease_with_more_days_remaining(
    case: tuple[BillingCycle, Period, date], seats: int, price: int
) -> None:
    cycle, period, today = case
    later = proration_for(period, today)
    if today == period.start:
        return
    earlier = proration_for(period, today - timedelta(days=1))
    assert earlier.days_remaining == later.days_remaining + 1
    assert prorate(seats, price, cycle.months, earlier) >= prorate(
        seats, price, cycle.months, later
    )


@settings(max_examples=200)
@given(
    days_in_period=st.integers(min_value=1, max_value=366),
    seats=seat_counts,
    price=prices,
    months=st.sampled_from([1, 12]),
    data=st.data(),
)
def test_proration_is_monotonic_over_all_remaining_day_counts(
    days_in_period: int, seats: int, price: int, months: int, data: st.DataObject
) -> None:
    fewer = data.draw(st.integers(min_value=1, max_value=days_in_period))
    more = data.draw(st.integers(min_value=fewer, max_value=days_in_period))
    start, end = date(2026, 1, 1), date(2026, 1, 1) + timedelta(days=days_in_period)
    a = prorate(seats, price, months, Proration(start, end, fewer, days_in_period))
    b = prorate(seats, price, months, Proration(start, end, more, days_in_period))
    assert a <= b


@settings(max_examples=200)
@given(seats=seat_counts, price=prices)
def test_yearly_cycle_total_is_exactly_twelve_monthly_totals(seats: int, price: int) -> None:
    assert cycle_total(seats, price, YEARLY) == 12 * cycle_total(seats, price, MONTHLY)


@settings(max_examples=200)
@given(anchor=dates, day=dates, seats=seat_counts, price=prices)
def test_full_yearly_charge_equals_twelve_full_monthly_charges(
    anchor: date, day: date, seats: int, price: int
) -> None:
    yearly = period_containing(anchor, YEARLY, day)
    monthly = period_containing(anchor, MONTHLY, day)
    yearly_due = prorate(seats, price, YEARLY.months, proration_for(yearly, yearly.start))
    monthly_due = prorate(seats, price, MONTHLY.months, proration_for(monthly, monthly.start))
    assert yearly_due == 12 * monthly_due


@settings(max_examples=200)
@given(case=periods_and_days(), seats=seat_counts, price=prices)
def test_amounts_are_integers_that_fit_in_64_bits(
    case: tuple[BillingCycle, Period, date], seats: int, price: int
) -> None:
    cycle, period, today = case
    due = prorate(seats, price, cycle.months, proration_for(period, today))
    total = cycle_total(seats, price, cycle)
    assert type(due) is int
    assert type(total) is int
    assert 0 <= due <= total < 2**63


def test_largest_amounts_fit_in_64_bits() -> None:
    seats, price = 1_000_000_000, 1_000_000
    period = Period(date(2028, 1, 1), date(2029, 1, 1))
    assert period.days == 366
    due = prorate(seats, price, YEARLY.months, proration_for(period, date(2028, 1, 2)))
    # round(1e15 * 12 * 365 / 366), computed exactly.
    assert due == (2 * seats * price * 12 * 365 + 366) // (2 * 366)
    assert cycle_total(seats, price, YEARLY) == 12 * 10**15 < 2**63
