"""What each event does to a plan (app/plan/transitions.py): pure, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.billing.periods import BillingCycle, Period
from app.plan import transitions
from app.seats.rules import Trial
from app.seats.status import PlanStatus

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PERIOD = Period(date(2026, 3, 1), date(2026, 4, 1))


def test_a_trial_expires_at_its_end_exactly_and_never_before() -> None:
    end = NOW
    assert transitions.expire_trial(PlanStatus.TRIALING, end, NOW - timedelta(seconds=1)) is None
    change = transitions.expire_trial(PlanStatus.TRIALING, end, NOW)
    assert change is not None
    assert dict(change.values) == {"status": PlanStatus.TRIAL_EXPIRED, "seats": 0}


@pytest.mark.parametrize("status", [s for s in PlanStatus if s is not PlanStatus.TRIALING])
def test_only_a_trial_expires(status: PlanStatus) -> None:
    assert transitions.expire_trial(status, NOW, NOW) is None


def test_starting_a_trial_sets_its_seats_and_dates() -> None:
    trial = Trial(seats=20, started_at=NOW, ends_at=NOW + timedelta(days=14))
    assert dict(transitions.start_trial(trial).values) == {
        "status": PlanStatus.TRIALING,
        "seats": 20,
        "trial_started_at": NOW,
        "trial_ends_at": NOW + timedelta(days=14),
    }


def test_a_paid_purchase_raises_a_paid_plan_and_ends_the_wait_for_it() -> None:
    change = transitions.purchase_paid(
        PlanStatus.ACTIVE, "inv_1", "inv_1", 12, PERIOD, BillingCycle.MONTHLY
    )
    assert dict(change.values) == {"seats": 12, "pending_invoice_id": None, "pending_seats": None}


@pytest.mark.parametrize(
    "status",
    [PlanStatus.NONE, PlanStatus.TRIALING, PlanStatus.TRIAL_EXPIRED, PlanStatus.CANCELED],
)
def test_a_paid_purchase_restarts_a_plan_that_was_not_paid(status: PlanStatus) -> None:
    change = transitions.purchase_paid(status, "inv_1", "inv_1", 5, PERIOD, BillingCycle.YEARLY)
    assert dict(change.values) == {
        "seats": 5,
        "period_start": PERIOD.start,
        "period_end": PERIOD.end,
        "billing_cycle": BillingCycle.YEARLY,
        "status": PlanStatus.ACTIVE,
        "pending_invoice_id": None,
        "pending_seats": None,
    }


def test_closing_a_purchase_the_plan_does_not_wait_for_changes_nothing_of_its_wait() -> None:
    assert dict(transitions.close_purchase("inv_2", "inv_1").values) == {}
    assert dict(transitions.close_purchase("inv_1", "inv_1").values) == {
        "pending_invoice_id": None,
        "pending_seats": None,
    }


def test_only_an_active_plan_goes_past_due_and_only_a_past_due_one_recovers() -> None:
    for status in PlanStatus:
        past_due = transitions.go_past_due(status)
        recovered = transitions.recover(status)
        assert (past_due is not None) == (status is PlanStatus.ACTIVE)
        assert (recovered is not None) == (status is PlanStatus.PAST_DUE)
    assert transitions.go_past_due(PlanStatus.ACTIVE) == transitions.Change(
        {"status": PlanStatus.PAST_DUE}
    )


def test_canceling_leaves_no_seats_and_no_period() -> None:
    assert dict(transitions.cancel().values) == {
        "status": PlanStatus.CANCELED,
        "seats": 0,
        "period_start": None,
        "period_end": None,
        "billing_cycle": None,
    }


def test_renewing_moves_the_period_and_the_cycle_only() -> None:
    assert dict(transitions.renew(PERIOD, BillingCycle.MONTHLY).values) == {
        "period_start": PERIOD.start,
        "period_end": PERIOD.end,
        "billing_cycle": BillingCycle.MONTHLY,
    }
