"""The seat rules of SPEC §2 as pure functions: no database, no clock, no HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.billing.periods import BillingCycle, Period
from app.errors import (
    AlreadySubscribed,
    NoActivePlan,
    NoEmptySeat,
    NotADecrease,
    NotAnIncrease,
    PastDue,
    PurchaseInProgress,
    RenewalDue,
    SeatsAssigned,
    TrialAlreadyUsed,
)
from app.seats.rules import (
    PlanState,
    check_assign,
    check_decrease_allowed,
    check_purchase,
    check_removal,
    pricing_schedule,
    seats_at_next_renewal,
    start_trial,
)
from app.seats.status import PlanStatus

NONE = PlanStatus.NONE
TRIALING = PlanStatus.TRIALING
EXPIRED = PlanStatus.TRIAL_EXPIRED
ACTIVE = PlanStatus.ACTIVE
PAST_DUE = PlanStatus.PAST_DUE

NOVEMBER = Period(date(2026, 11, 1), date(2026, 12, 1))
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def plan(
    status: PlanStatus = ACTIVE,
    seats: int = 10,
    assigned: int = 0,
    *,
    trial_used: bool = False,
    pending_seats: int | None = None,
    period: Period | None = None,
    cycle: BillingCycle | None = None,
) -> PlanState:
    if period is None and status.is_paid:
        period = NOVEMBER
    if cycle is None and status.is_paid:
        cycle = BillingCycle.MONTHLY
    return PlanState(status, seats, assigned, trial_used, pending_seats, period, cycle)


# --- R3: the trial -------------------------------------------------------------------------


def test_r3_trial_has_the_given_seats_and_days() -> None:
    trial = start_trial(plan(NONE, 0), NOW, seats=20, days=14)
    assert trial.seats == 20
    assert trial.started_at == NOW
    assert trial.ends_at == NOW + timedelta(days=14)
    assert trial.ends_at == datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("status", [TRIALING, EXPIRED, ACTIVE, PAST_DUE])
def test_r3_trial_only_once(status: PlanStatus) -> None:
    used = plan(status, 20 if status is TRIALING else 0, trial_used=True)
    with pytest.raises(TrialAlreadyUsed):
        start_trial(used, NOW, seats=20, days=14)


@pytest.mark.parametrize("status", [ACTIVE, PAST_DUE])
def test_r3_no_trial_on_a_paid_plan(status: PlanStatus) -> None:
    with pytest.raises(AlreadySubscribed):
        start_trial(plan(status, 5), NOW, seats=20, days=14)


# --- R6, R2: purchases ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [NONE, TRIALING, EXPIRED])
def test_r6_purchase_out_of_an_unpaid_plan_sets_any_total(status: PlanStatus) -> None:
    seats = 20 if status is TRIALING else 0
    # Below the trial's 20 seats is still a purchase: the trial's seats are not paid.
    for total in (1, 5, 20, 21):
        check_purchase(plan(status, seats), total)


@pytest.mark.parametrize("status", [NONE, TRIALING, EXPIRED])
def test_r6_purchase_of_zero_seats_is_not_an_increase(status: PlanStatus) -> None:
    with pytest.raises(NotAnIncrease):
        check_purchase(plan(status, 20 if status is TRIALING else 0), 0)


def test_r6_purchase_on_active_plan_must_raise_the_total() -> None:
    check_purchase(plan(ACTIVE, 10), 11)
    for total in (0, 9, 10):
        with pytest.raises(NotAnIncrease) as info:
            check_purchase(plan(ACTIVE, 10), total)
        assert info.value.extra == {"current": 10}


def test_r2_no_cap_on_purchased_seats() -> None:
    check_purchase(plan(ACTIVE, 10), 1_000_000_000)
    check_purchase(plan(NONE, 0), 250_000)


def test_r9_past_due_refuses_purchases() -> None:
    with pytest.raises(PastDue):
        check_purchase(plan(PAST_DUE, 10), 20)


def test_r6_pending_purchase_refuses_another() -> None:
    with pytest.raises(PurchaseInProgress):
        check_purchase(plan(ACTIVE, 10, pending_seats=15), 20)
    with pytest.raises(PurchaseInProgress):
        check_purchase(plan(TRIALING, 20, pending_seats=5), 6)


@pytest.mark.parametrize("status", [TRIALING, EXPIRED])
def test_r10_purchase_must_cover_the_assigned_agents(status: PlanStatus) -> None:
    seats = 20 if status is TRIALING else 0
    with pytest.raises(SeatsAssigned) as info:
        check_purchase(plan(status, seats, assigned=7), 6)
    assert info.value.extra == {"assigned": 7}
    check_purchase(plan(status, seats, assigned=7), 7)


# --- R4, R7: removals ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [NONE, TRIALING, EXPIRED])
def test_r7_removal_needs_a_paid_plan(status: PlanStatus) -> None:
    with pytest.raises(NoActivePlan):
        check_removal(plan(status, 20 if status is TRIALING else 0), 0)


def test_r4_cannot_remove_assigned_seats() -> None:
    with pytest.raises(SeatsAssigned) as info:
        check_removal(plan(ACTIVE, 10, assigned=6), 5)
    assert info.value.extra == {"assigned": 6}
    assert info.value.detail == "6 seats are assigned: unassign 1 agent first."
    with pytest.raises(SeatsAssigned) as info:
        check_removal(plan(ACTIVE, 10, assigned=6), 3)
    assert info.value.detail == "6 seats are assigned: unassign 3 agents first."


@pytest.mark.parametrize("status", [ACTIVE, PAST_DUE])
def test_r4_removal_down_to_the_assigned_count(status: PlanStatus) -> None:
    check_removal(plan(status, 10, assigned=6), 6)
    check_removal(plan(status, 10, assigned=0), 0)


def test_r7_removal_must_lower_the_total() -> None:
    for total in (10, 11):
        with pytest.raises(NotADecrease) as info:
            check_removal(plan(ACTIVE, 10), total)
        assert info.value.extra == {"current": 10}


def test_r7_no_removal_while_a_purchase_is_pending() -> None:
    with pytest.raises(PurchaseInProgress):
        check_removal(plan(ACTIVE, 10, pending_seats=12), 5)


# --- R5: assignments -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [NONE, EXPIRED])
def test_r5_assign_needs_a_trialing_or_paid_plan(status: PlanStatus) -> None:
    with pytest.raises(NoActivePlan):
        check_assign(plan(status, 0))


@pytest.mark.parametrize("status", [TRIALING, ACTIVE, PAST_DUE])
def test_r5_assign_needs_an_empty_seat(status: PlanStatus) -> None:
    check_assign(plan(status, 20, assigned=19))
    with pytest.raises(NoEmptySeat) as info:
        check_assign(plan(status, 20, assigned=20))
    assert info.value.extra == {"seats": 20, "assigned": 20}


def test_r5_pending_purchase_total_bounds_the_empty_seats() -> None:
    # A trial converting to 5 paid seats: a 6th agent would not fit once it is paid.
    converting = plan(TRIALING, 20, assigned=5, pending_seats=5)
    assert converting.available == 0
    with pytest.raises(NoEmptySeat):
        check_assign(converting)
    # Raising an active plan: the seats already paid are the bound until the charge settles.
    raising = plan(ACTIVE, 10, assigned=4, pending_seats=12)
    assert raising.available == 6


@pytest.mark.parametrize(
    ("state", "available"),
    [
        (plan(NONE, 0), 0),
        (plan(TRIALING, 20, assigned=3), 17),
        (plan(ACTIVE, 10, assigned=10), 0),
        (plan(PAST_DUE, 10, assigned=4), 6),
        # R10: an expired trial keeps its agents with 0 seats; never negative.
        (plan(EXPIRED, 0, assigned=3), 0),
        (plan(EXPIRED, 0, assigned=3, pending_seats=5), 0),
    ],
)
def test_available_seats(state: PlanState, available: int) -> None:
    assert state.available == available


@given(
    status=st.sampled_from(list(PlanStatus)),
    seats=st.integers(0, 10**9),
    assigned=st.integers(0, 10**9),
    pending=st.none() | st.integers(0, 10**9),
)
def test_available_is_never_negative_nor_above_the_total(
    status: PlanStatus, seats: int, assigned: int, pending: int | None
) -> None:
    state = plan(status, seats, assigned, pending_seats=pending)
    assert 0 <= state.available <= seats
    if pending is not None:
        assert state.available <= pending


def test_r8_decrease_allowed_only_down_to_the_assigned_count() -> None:
    assert check_decrease_allowed(plan(ACTIVE, 10, assigned=4), 4)
    assert not check_decrease_allowed(plan(ACTIVE, 10, assigned=4), 3)


# --- pricing period ------------------------------------------------------------------------


def test_paid_plan_prices_over_its_paid_period() -> None:
    paid = plan(ACTIVE, 5, period=Period(date(2026, 11, 1), date(2026, 12, 1)))
    got = pricing_schedule(
        paid, anchor=date(2026, 11, 1), cycle=BillingCycle.MONTHLY, today=date(2026, 11, 30)
    )
    assert got == (Period(date(2026, 11, 1), date(2026, 12, 1)), BillingCycle.MONTHLY)


def test_r12_paid_plan_prices_in_the_cycle_it_was_billed_under() -> None:
    # The account switched to yearly mid-period: until the period ends, purchases are priced
    # as monthly over the monthly period (not 12x).
    paid = plan(ACTIVE, 5, cycle=BillingCycle.MONTHLY)
    got = pricing_schedule(
        paid, anchor=date(2026, 11, 1), cycle=BillingCycle.YEARLY, today=date(2026, 11, 21)
    )
    assert got == (NOVEMBER, BillingCycle.MONTHLY)


def test_r10_trial_is_over_at_trial_ends_at_exactly() -> None:
    ends = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    trial = replace(plan(TRIALING, 20, assigned=3), trial_ends_at=ends)
    assert trial.at(ends - timedelta(seconds=1)).status is TRIALING
    over = trial.at(ends)
    assert over.status is EXPIRED and over.seats == 0 and over.available == 0
    with pytest.raises(NoActivePlan):
        check_assign(over)


@pytest.mark.parametrize("status", [NONE, TRIALING, EXPIRED])
def test_unpaid_plan_prices_over_the_anchor_period_containing_today(status: PlanStatus) -> None:
    got = pricing_schedule(
        plan(status, 0),
        anchor=date(2026, 3, 15),
        cycle=BillingCycle.YEARLY,
        today=date(2026, 11, 21),
    )
    assert got == (Period(date(2026, 3, 15), date(2027, 3, 15)), BillingCycle.YEARLY)


@pytest.mark.parametrize("today", [date(2026, 12, 1), date(2027, 1, 5)])
@pytest.mark.parametrize("status", [ACTIVE, PAST_DUE])
def test_renewal_due_when_the_paid_period_ended(status: PlanStatus, today: date) -> None:
    # Pricing a purchase before the overdue renewal would charge the new seats twice.
    with pytest.raises(RenewalDue):
        pricing_schedule(
            plan(status, 5), anchor=date(2026, 11, 1), cycle=BillingCycle.MONTHLY, today=today
        )


# --- R15: scheduled decreases, pure -----------------------------------------------------------

_PAID = PlanState(
    status=PlanStatus.ACTIVE,
    seats=25,
    assigned=3,
    trial_used=False,
    period=Period(date(2026, 11, 1), date(2026, 12, 1)),
    cycle=BillingCycle.MONTHLY,
)
_END = datetime(2026, 12, 1, tzinfo=UTC)


def test_r15_seats_at_next_renewal_is_the_scheduled_total_or_the_current_one() -> None:
    assert seats_at_next_renewal(_PAID) == 25
    scheduled = replace(_PAID, scheduled_seats=10, scheduled_for=date(2026, 12, 1))
    assert seats_at_next_renewal(scheduled) == 10


def test_r15_the_plans_seats_become_n_at_the_periods_end_exactly() -> None:
    scheduled = replace(_PAID, scheduled_seats=10, scheduled_for=date(2026, 12, 1))
    before = scheduled.at(_END - timedelta(microseconds=1))
    assert (before.seats, before.scheduled_seats, before.available) == (25, 10, 7)
    after = scheduled.at(_END)
    assert (after.seats, after.scheduled_seats, after.available) == (10, None, 7)
    # A purchase waiting for its payment holds it: it may still cancel the decrease.
    held = replace(scheduled, pending_seats=30).at(_END)
    assert (held.seats, held.scheduled_seats) == (25, 10)
