"""The seat rules of SPEC §2, as pure functions of plain values (no I/O, no clock).

Services lock the plan row, then ask these functions; whatever they refuse, nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from app.billing.periods import BillingCycle, Period, period_containing
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
from app.seats.status import PlanStatus


@dataclass(frozen=True, slots=True)
class PlanState:
    """What the rules need to know about a plan."""

    status: PlanStatus
    seats: int
    assigned: int
    trial_used: bool
    pending_seats: int | None = None
    period: Period | None = None
    cycle: BillingCycle | None = None  # the cycle ``period`` was billed under (R12)
    trial_ends_at: datetime | None = None

    def at(self, now: datetime) -> PlanState:
        """The plan as it stands at ``now``: a trial ends at ``trial_ends_at`` exactly (R10),
        whether or not the billing run has recorded it yet."""
        if (
            self.status is PlanStatus.TRIALING
            and self.trial_ends_at is not None
            and now >= self.trial_ends_at
        ):
            return replace(self, status=PlanStatus.TRIAL_EXPIRED, seats=0)
        return self

    @property
    def available(self) -> int:
        """Empty seats; a pending purchase's total also bounds them (it will become the total)."""
        capacity = self.seats if self.status.grants_access else 0
        if self.pending_seats is not None:
            capacity = min(capacity, self.pending_seats) if capacity else 0
        return max(capacity - self.assigned, 0)

    @property
    def paid_seats(self) -> int:
        """Seats already paid for this period: trial seats are free, so a purchase pays all."""
        return self.seats if self.status.is_paid else 0


@dataclass(frozen=True, slots=True)
class Trial:
    seats: int
    started_at: datetime
    ends_at: datetime


def start_trial(plan: PlanState, now: datetime, *, seats: int, days: int) -> Trial:
    """R3: one trial per account, of ``seats`` free seats for ``days`` days."""
    if plan.trial_used:
        raise TrialAlreadyUsed("This account already used its trial.")
    if plan.status.is_paid:
        raise AlreadySubscribed("This account already has a paid plan.")
    return Trial(seats=seats, started_at=now, ends_at=now + timedelta(days=days))


def check_purchase(plan: PlanState, new_total: int) -> None:
    """R6, R4, R9: may the plan be raised to ``new_total`` now?"""
    if plan.status is PlanStatus.PAST_DUE:
        raise PastDue("Pay the outstanding invoice before buying seats.")
    if plan.pending_seats is not None:
        raise PurchaseInProgress("Another purchase is waiting for its payment.")
    # Out of a trial (or none, or an expired one) the purchase sets the first paid total,
    # so any total that covers the assigned agents is an increase over the 0 paid seats.
    if new_total <= plan.paid_seats or new_total == 0:
        raise NotAnIncrease(
            f"The new total must be above the current {plan.paid_seats} paid seats.",
            current=plan.paid_seats,
        )
    if new_total < plan.assigned:
        raise SeatsAssigned(
            f"{plan.assigned} seats are assigned: buy at least that many.",
            assigned=plan.assigned,
        )


def check_removal(plan: PlanState, new_total: int) -> None:
    """R4, R7: may the plan be lowered to ``new_total`` now?"""
    if not plan.status.is_paid:
        raise NoActivePlan("Only a paid plan's seats can be removed; a trial has a fixed total.")
    if plan.pending_seats is not None:
        raise PurchaseInProgress("A purchase is waiting for its payment.")
    if new_total >= plan.seats:
        raise NotADecrease(
            f"The new total must be below the current {plan.seats} seats.", current=plan.seats
        )
    if new_total < plan.assigned:
        excess = plan.assigned - new_total
        raise SeatsAssigned(
            f"{plan.assigned} seats are assigned: unassign {excess} "
            f"{'agent' if excess == 1 else 'agents'} first.",
            assigned=plan.assigned,
        )


def check_assign(plan: PlanState) -> None:
    """R5: an agent needs a trialing or paid plan and an empty seat."""
    if not plan.status.grants_access:
        raise NoActivePlan("The plan is not trialing or paid.")
    if plan.available <= 0:
        raise NoEmptySeat(
            f"All {plan.seats} seats are assigned.", seats=plan.seats, assigned=plan.assigned
        )


def pricing_schedule(
    plan: PlanState, *, anchor: date, cycle: BillingCycle, today: date
) -> tuple[Period, BillingCycle]:
    """The period a purchase today is prorated over, and the cycle it is priced in.

    A paid plan uses the period it has paid through and the cycle it was billed under, never
    an account setting changed since (R12: a change applies from the period's end); a plan
    with nothing paid uses the account's schedule's period that contains today. A paid plan
    whose period has ended is waiting for the billing run's renewal: pricing it now would
    charge the new seats twice (once now, once in the overdue renewal), so it is refused.
    """
    if plan.status.is_paid and plan.period is not None:
        if not plan.period.start <= today < plan.period.end:
            raise RenewalDue("The plan's renewal is being processed; retry shortly.")
        return plan.period, plan.cycle or cycle
    return period_containing(anchor, cycle, today), cycle


def check_decrease_allowed(plan: PlanState, new_total: int) -> bool:
    """R8: whether a quoted total could be reached by a removal (it covers the agents)."""
    return new_total >= plan.assigned
