"""Billing periods from the account's anchor (SPEC §3)."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from app.billing.periods import (
    BillingCycle,
    Period,
    Renewal,
    add_months,
    period_containing,
    renewal_after,
)

MONTHLY = BillingCycle.MONTHLY
YEARLY = BillingCycle.YEARLY

dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))
cycles = st.sampled_from(list(BillingCycle))


# --- cycles ---------------------------------------------------------------------------------


def test_monthly_cycle_has_one_month_and_yearly_twelve() -> None:
    assert MONTHLY.months == 1
    assert YEARLY.months == 12


# --- monthly and yearly periods from an anchor ----------------------------------------------


def test_monthly_period_runs_from_anchor_day_to_same_day_next_month() -> None:
    anchor = date(2026, 11, 1)
    period = period_containing(anchor, MONTHLY, date(2026, 11, 21))
    assert period == Period(date(2026, 11, 1), date(2026, 12, 1))
    assert period.days == 30


def test_monthly_period_months_after_the_anchor() -> None:
    anchor = date(2026, 1, 15)
    period = period_containing(anchor, MONTHLY, date(2026, 6, 20))
    assert period == Period(date(2026, 6, 15), date(2026, 7, 15))


def test_monthly_period_in_a_later_year() -> None:
    anchor = date(2026, 11, 10)
    period = period_containing(anchor, MONTHLY, date(2027, 1, 9))
    assert period == Period(date(2026, 12, 10), date(2027, 1, 10))


def test_yearly_period_runs_from_anchor_date_to_same_date_a_year_later() -> None:
    anchor = date(2026, 3, 15)
    period = period_containing(anchor, YEARLY, date(2026, 9, 15))
    assert period == Period(date(2026, 3, 15), date(2027, 3, 15))
    assert period.days == 365


def test_yearly_period_years_after_the_anchor() -> None:
    anchor = date(2026, 3, 15)
    period = period_containing(anchor, YEARLY, date(2030, 3, 14))
    assert period == Period(date(2029, 3, 15), date(2030, 3, 15))


def test_yearly_period_over_a_leap_day_has_366_days() -> None:
    period = period_containing(date(2027, 6, 1), YEARLY, date(2028, 1, 1))
    assert period == Period(date(2027, 6, 1), date(2028, 6, 1))
    assert period.days == 366


# --- clamping -------------------------------------------------------------------------------


def test_anchor_on_31st_clamps_to_end_of_february() -> None:
    anchor = date(2026, 1, 31)
    assert period_containing(anchor, MONTHLY, date(2026, 2, 10)) == Period(
        date(2026, 1, 31), date(2026, 2, 28)
    )


def test_anchor_on_31st_returns_to_31st_of_march_after_february() -> None:
    anchor = date(2026, 1, 31)
    assert period_containing(anchor, MONTHLY, date(2026, 3, 1)) == Period(
        date(2026, 2, 28), date(2026, 3, 31)
    )


def test_anchor_on_31st_clamps_to_29th_february_in_a_leap_year() -> None:
    anchor = date(2028, 1, 31)
    assert period_containing(anchor, MONTHLY, date(2028, 2, 10)) == Period(
        date(2028, 1, 31), date(2028, 2, 29)
    )
    assert period_containing(anchor, MONTHLY, date(2028, 3, 1)) == Period(
        date(2028, 2, 29), date(2028, 3, 31)
    )


def test_anchor_on_31st_clamps_to_30th_in_thirty_day_months() -> None:
    anchor = date(2026, 1, 31)
    assert period_containing(anchor, MONTHLY, date(2026, 4, 15)) == Period(
        date(2026, 3, 31), date(2026, 4, 30)
    )
    assert period_containing(anchor, MONTHLY, date(2026, 5, 15)) == Period(
        date(2026, 4, 30), date(2026, 5, 31)
    )


def test_anchor_on_31st_is_not_chained_from_a_short_month() -> None:
    """31 Jan -> 28 Feb -> 31 Mar, never 28 Mar."""
    anchor = date(2026, 1, 31)
    starts = [add_months(anchor, k) for k in range(4)]
    assert starts == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]


def test_anchor_on_29th_february_yearly_clamps_to_28th_then_returns_on_leap_year() -> None:
    anchor = date(2028, 2, 29)
    expected = [
        Period(date(2028, 2, 29), date(2029, 2, 28)),
        Period(date(2029, 2, 28), date(2030, 2, 28)),
        Period(date(2030, 2, 28), date(2031, 2, 28)),
        Period(date(2031, 2, 28), date(2032, 2, 29)),
        Period(date(2032, 2, 29), date(2033, 2, 28)),
    ]
    period = period_containing(anchor, YEARLY, anchor)
    walked = [period]
    for _ in range(4):
        period = renewal_after(anchor, YEARLY, period).period
        walked.append(period)
    assert walked == expected
    assert [p.days for p in walked] == [365, 365, 365, 366, 365]


def test_anchor_on_30th_clamps_only_in_february() -> None:
    anchor = date(2026, 1, 30)
    assert period_containing(anchor, MONTHLY, date(2026, 2, 15)) == Period(
        date(2026, 1, 30), date(2026, 2, 28)
    )
    assert period_containing(anchor, MONTHLY, date(2026, 3, 15)) == Period(
        date(2026, 2, 28), date(2026, 3, 30)
    )
    assert period_containing(anchor, MONTHLY, date(2026, 4, 15)) == Period(
        date(2026, 3, 30), date(2026, 4, 30)
    )
    assert period_containing(anchor, MONTHLY, date(2026, 5, 31)) == Period(
        date(2026, 5, 30), date(2026, 6, 30)
    )


# --- days before the anchor (negative index) ------------------------------------------------


def test_day_before_anchor_falls_in_the_period_ending_on_the_anchor() -> None:
    anchor = date(2026, 3, 15)
    assert period_containing(anchor, MONTHLY, date(2026, 3, 14)) == Period(
        date(2026, 2, 15), date(2026, 3, 15)
    )


def test_day_before_anchor_on_31st_clamps_the_earlier_period_start() -> None:
    anchor = date(2026, 3, 31)
    assert period_containing(anchor, MONTHLY, date(2026, 3, 30)) == Period(
        date(2026, 2, 28), date(2026, 3, 31)
    )


def test_day_before_yearly_anchor_falls_in_the_previous_year() -> None:
    anchor = date(2026, 3, 15)
    assert period_containing(anchor, YEARLY, date(2026, 3, 14)) == Period(
        date(2025, 3, 15), date(2026, 3, 15)
    )


def test_day_years_before_the_anchor() -> None:
    anchor = date(2026, 3, 15)
    assert period_containing(anchor, MONTHLY, date(2020, 1, 1)) == Period(
        date(2019, 12, 15), date(2020, 1, 15)
    )
    assert period_containing(anchor, YEARLY, date(2020, 1, 1)) == Period(
        date(2019, 3, 15), date(2020, 3, 15)
    )


# --- period boundaries ----------------------------------------------------------------------


def test_period_containing_its_exact_start_day_starts_on_that_day() -> None:
    anchor = date(2026, 1, 31)
    for cycle in BillingCycle:
        period = period_containing(anchor, cycle, date(2027, 2, 3))
        assert period_containing(anchor, cycle, period.start) == period


def test_period_containing_the_day_before_its_end_is_the_same_period() -> None:
    anchor = date(2026, 1, 31)
    for cycle in BillingCycle:
        period = period_containing(anchor, cycle, date(2027, 2, 3))
        assert period_containing(anchor, cycle, period.end - timedelta(days=1)) == period


def test_period_end_day_belongs_to_the_next_period() -> None:
    anchor = date(2026, 11, 1)
    period = Period(date(2026, 11, 1), date(2026, 12, 1))
    assert period_containing(anchor, MONTHLY, period.end) == Period(
        date(2026, 12, 1), date(2027, 1, 1)
    )


# --- renewal_after (R12) --------------------------------------------------------------------


def next_period(anchor: date, cycle: BillingCycle, period: Period) -> Period:
    """The whole period the renewal after ``period`` moves the plan into."""
    return renewal_after(anchor, cycle, period).period


def test_next_period_starts_on_the_previous_end() -> None:
    anchor = date(2026, 1, 31)
    period = period_containing(anchor, MONTHLY, anchor)
    following = next_period(anchor, MONTHLY, period)
    assert following == Period(date(2026, 2, 28), date(2026, 3, 31))
    assert next_period(anchor, MONTHLY, following) == Period(date(2026, 3, 31), date(2026, 4, 30))


def test_next_yearly_period_starts_on_the_previous_end() -> None:
    anchor = date(2026, 3, 15)
    period = period_containing(anchor, YEARLY, anchor)
    assert next_period(anchor, YEARLY, period) == Period(date(2027, 3, 15), date(2028, 3, 15))


def test_r12_renewal_after_anchor_change_is_a_whole_new_period_billed_from_the_old_end() -> None:
    # SPEC §3: anchor moved from the 1st to the 15th; paid 2026-11-01..12-01.
    renewal = renewal_after(
        date(2026, 11, 15), MONTHLY, Period(date(2026, 11, 1), date(2026, 12, 1))
    )
    assert renewal == Renewal(
        period=Period(date(2026, 11, 15), date(2026, 12, 15)),
        billed=Period(date(2026, 12, 1), date(2026, 12, 15)),
    )
    assert renewal.is_bridge and renewal.billed.days == 14 and renewal.period.days == 30
    # From there on the periods follow the new anchor, whole.
    following = renewal_after(date(2026, 11, 15), MONTHLY, renewal.period)
    assert not following.is_bridge
    assert following.period == Period(date(2026, 12, 15), date(2027, 1, 15))


def test_r12_renewal_after_cycle_change_lands_on_the_yearly_schedule() -> None:
    anchor = date(2026, 3, 15)
    renewal = renewal_after(anchor, YEARLY, Period(date(2026, 8, 15), date(2026, 9, 15)))
    assert renewal.period == Period(date(2026, 3, 15), date(2027, 3, 15))
    assert renewal.billed == Period(date(2026, 9, 15), date(2027, 3, 15))
    assert next_period(anchor, YEARLY, renewal.period) == Period(
        date(2027, 3, 15), date(2028, 3, 15)
    )


def test_next_period_without_change_is_not_bridged() -> None:
    anchor = date(2026, 1, 20)
    period = Period(date(2026, 2, 20), date(2026, 3, 20))
    assert next_period(anchor, MONTHLY, period) == Period(date(2026, 3, 20), date(2026, 4, 20))


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=200)
@given(anchor=dates, cycle=cycles, day=dates)
def test_any_day_lies_within_its_period(anchor: date, cycle: BillingCycle, day: date) -> None:
    period = period_containing(anchor, cycle, day)
    assert period.start <= day < period.end


@settings(max_examples=50)
@given(anchor=dates, cycle=cycles, day=dates)
def test_successive_periods_are_contiguous(anchor: date, cycle: BillingCycle, day: date) -> None:
    period = period_containing(anchor, cycle, day)
    for _ in range(30):
        following = period_containing(anchor, cycle, period.end)
        assert following.start == period.end
        assert next_period(anchor, cycle, period) == following
        period = following


@settings(max_examples=200)
@given(anchor=dates, cycle=cycles, day=dates)
def test_period_length_matches_its_cycle(anchor: date, cycle: BillingCycle, day: date) -> None:
    period = period_containing(anchor, cycle, day)
    if cycle is MONTHLY:
        assert 28 <= period.days <= 31
    else:
        assert 365 <= period.days <= 366


@settings(max_examples=200)
@given(anchor=dates, cycle=cycles, day=dates)
def test_period_starts_keep_the_anchor_day_when_the_month_has_it(
    anchor: date, cycle: BillingCycle, day: date
) -> None:
    period = period_containing(anchor, cycle, day)
    for boundary in (period.start, period.end):
        last_day = calendar.monthrange(boundary.year, boundary.month)[1]
        assert boundary.day == min(anchor.day, last_day)
        if cycle is YEARLY:
            assert boundary.month == anchor.month
