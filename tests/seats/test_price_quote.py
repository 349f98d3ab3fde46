"""The one pricing of quotes and previews (R8), on plain objects: no database, no server."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from app.billing.periods import BillingCycle
from app.directory.models import Account
from app.seats.models import Plan, PlanStatus
from app.seats.service import price_quote
from tests.conftest import make_settings

SETTINGS = make_settings("sqlite://")
TODAY = datetime(2026, 11, 21, 12, tzinfo=UTC)  # the pricing day: 2026-11-21
AT = datetime(2026, 11, 1, tzinfo=UTC)


def account(cycle: BillingCycle = BillingCycle.MONTHLY) -> Account:
    return Account(
        id="acme",
        name="Acme",
        billing_cycle=cycle,
        billing_anchor=date(2026, 11, 1),
        payment_method="pm_card_visa",
        currency="USD",
        created_at=AT,
        updated_at=AT,
    )


def plan(status: PlanStatus, seats: int, assigned: int) -> Plan:
    paid = status in (PlanStatus.ACTIVE, PlanStatus.PAST_DUE)
    return Plan(
        account_id="acme",
        status=status,
        seats=seats,
        assigned=assigned,
        period_start=date(2026, 11, 1) if paid else None,
        period_end=date(2026, 12, 1) if paid else None,
        pending_seats=None,
        trial_started_at=AT if status is PlanStatus.TRIALING else None,
    )


def test_active_plan_prices_the_added_seats() -> None:
    q = price_quote(plan(PlanStatus.ACTIVE, 5, 2), account(), 9, TODAY, SETTINGS)
    assert (q.current_seats, q.seats, q.change, q.assigned, q.allowed) == (5, 9, 4, 2, True)
    assert (q.monthly_total, q.cycle_total, q.due_now) == (9 * 1900, 9 * 1900, 2533)
    assert (q.proration.days_remaining, q.proration.days_in_period) == (10, 30)


def test_a_trial_prices_every_seat_bought() -> None:
    q = price_quote(plan(PlanStatus.TRIALING, 20, 2), account(), 25, TODAY, SETTINGS)
    assert (q.change, q.due_now) == (5, 15833)  # round(25 * 1900 * 10 / 30)


@given(
    seats=st.integers(0, 10_000),
    current=st.integers(1, 10_000),
    assigned=st.integers(0, 10_000),
    yearly=st.booleans(),
)
def test_a_decrease_charges_nothing_and_is_allowed_only_above_the_agents(
    seats: int, current: int, assigned: int, yearly: bool
) -> None:
    assigned = min(assigned, current)
    cycle = BillingCycle.YEARLY if yearly else BillingCycle.MONTHLY
    q = price_quote(
        plan(PlanStatus.ACTIVE, current, assigned), account(cycle), seats, TODAY, SETTINGS
    )
    assert q.allowed == (seats >= assigned)
    assert q.monthly_total == seats * 1900
    assert q.cycle_total == seats * 1900 * cycle.months
    if seats <= current:
        assert q.due_now == 0
    else:
        assert 0 < q.due_now <= (seats - current) * 1900 * cycle.months
