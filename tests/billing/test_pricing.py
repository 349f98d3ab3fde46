"""Prices of a seat total: quotes and purchases (SPEC §3, R6-R8)."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from app.billing.periods import BillingCycle, Period
from app.billing.pricing import PriceChange, cycle_total, price_change
from app.billing.proration import Proration

MONTHLY = BillingCycle.MONTHLY
YEARLY = BillingCycle.YEARLY

NOVEMBER = Period(date(2026, 11, 1), date(2026, 12, 1))
YEAR = Period(date(2026, 3, 15), date(2027, 3, 15))


def test_increase_on_active_plan_charges_only_added_seats_prorated() -> None:
    # 10 -> 15 seats, 10 already paid, 10 of 30 days left: round(5 * 1900 * 10 / 30) = 3167.
    change = price_change(
        current_seats=10,
        seats=15,
        paid_seats=10,
        unit_price=1900,
        cycle=MONTHLY,
        period=NOVEMBER,
        today=date(2026, 11, 21),
    )
    assert change == PriceChange(
        current_seats=10,
        seats=15,
        unit_price=1900,
        billing_cycle=MONTHLY,
        monthly_total=15 * 1900,
        cycle_total=15 * 1900,
        due_now=3167,
        charged_seats=5,
        proration=Proration(date(2026, 11, 1), date(2026, 12, 1), 10, 30),
    )
    assert change.change == 5


def test_purchase_out_of_trial_charges_all_seats() -> None:
    # Trial has 20 seats but nothing is paid: buying 25 charges all 25.
    # round(25 * 1900 * 10 / 30) = round(15833.33) = 15833.
    change = price_change(
        current_seats=20,
        seats=25,
        paid_seats=0,
        unit_price=1900,
        cycle=MONTHLY,
        period=NOVEMBER,
        today=date(2026, 11, 21),
    )
    assert change.charged_seats == 25
    assert change.due_now == 15833
    assert change.change == 5
    assert change.monthly_total == 25 * 1900


def test_purchase_after_trial_expired_charges_all_seats_from_period_start() -> None:
    change = price_change(
        current_seats=0,
        seats=3,
        paid_seats=0,
        unit_price=1900,
        cycle=MONTHLY,
        period=NOVEMBER,
        today=date(2026, 11, 1),
    )
    assert change.charged_seats == 3
    assert change.due_now == 3 * 1900
    assert change.change == 3


def test_decrease_charges_nothing_and_quotes_new_monthly_total() -> None:
    change = price_change(
        current_seats=15,
        seats=10,
        paid_seats=15,
        unit_price=1900,
        cycle=MONTHLY,
        period=NOVEMBER,
        today=date(2026, 11, 21),
    )
    assert change.due_now == 0
    assert change.charged_seats == 0
    assert change.monthly_total == 10 * 1900
    assert change.cycle_total == 10 * 1900
    assert change.change == -5


def test_unchanged_total_charges_nothing() -> None:
    change = price_change(
        current_seats=10,
        seats=10,
        paid_seats=10,
        unit_price=1900,
        cycle=MONTHLY,
        period=NOVEMBER,
        today=date(2026, 11, 21),
    )
    assert change.due_now == 0
    assert change.charged_seats == 0
    assert change.change == 0


def test_increase_after_a_removal_charges_only_seats_above_those_paid() -> None:
    # 15 paid, removed to 10, back up to 12: still covered by this period's payment (R7).
    change = price_change(
        current_seats=10,
        seats=12,
        paid_seats=15,
        unit_price=1900,
        cycle=MONTHLY,
        period=NOVEMBER,
        today=date(2026, 11, 21),
    )
    assert change.due_now == 0
    assert change.charged_seats == 0
    assert change.change == 2


def test_yearly_plan_totals_are_twelve_months() -> None:
    # 3 seats added on 2026-09-15, 181 of 365 days left:
    # round(3 * 1900 * 12 * 181 / 365) = round(33918.904) = 33919.
    change = price_change(
        current_seats=7,
        seats=10,
        paid_seats=7,
        unit_price=1900,
        cycle=YEARLY,
        period=YEAR,
        today=date(2026, 9, 15),
    )
    assert change.billing_cycle is YEARLY
    assert change.monthly_total == 10 * 1900
    assert change.cycle_total == 10 * 1900 * 12
    assert change.due_now == 33919
    assert change.charged_seats == 3
    assert change.proration == Proration(date(2026, 3, 15), date(2027, 3, 15), 181, 365)


def test_cycle_total_is_seats_times_price_times_months() -> None:
    assert cycle_total(10, 1900, MONTHLY) == 19_000
    assert cycle_total(10, 1900, YEARLY) == 228_000
    assert cycle_total(0, 1900, YEARLY) == 0


def test_no_seat_cap_ten_thousand_seats() -> None:
    change = price_change(
        current_seats=0,
        seats=10_000,
        paid_seats=0,
        unit_price=1900,
        cycle=YEARLY,
        period=YEAR,
        today=YEAR.start,
    )
    assert change.due_now == change.cycle_total == 10_000 * 1900 * 12


@settings(max_examples=200)
@given(
    current=st.integers(min_value=0, max_value=100_000),
    seats=st.integers(min_value=0, max_value=100_000),
    paid=st.integers(min_value=0, max_value=100_000),
    price=st.integers(min_value=0, max_value=1_000_000),
    cycle=st.sampled_from(list(BillingCycle)),
)
def test_change_is_new_total_minus_current_and_charge_covers_only_unpaid_seats(
    current: int, seats: int, paid: int, price: int, cycle: BillingCycle
) -> None:
    period = YEAR if cycle is YEARLY else NOVEMBER
    change = price_change(
        current_seats=current,
        seats=seats,
        paid_seats=paid,
        unit_price=price,
        cycle=cycle,
        period=period,
        today=period.start,
    )
    assert change.change == seats - current
    assert change.charged_seats == max(seats - paid, 0)
    assert change.monthly_total == seats * price
    assert change.cycle_total == seats * price * cycle.months
    # On the first day of the period the charge is the full price of the unpaid seats.
    assert change.due_now == change.charged_seats * price * cycle.months
