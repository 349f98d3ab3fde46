"""The seat rules of SPEC §2, as pure functions of plain values (no I/O, no clock).

Services lock the plan row, then ask these functions; whatever they refuse, nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from app.billing.periods import BillingCycle, Period, period_containing
from app.errors import (
    AlreadySubscribed,
    NoActivePlan,
    NoEmptySeat,
    NoPaidPeriod,
    NoScheduledChange,
    NotADecrease,
    NotAnIncrease,
    PastDue,
    PurchaseInProgress,
    RenewalDue,
    SeatsAssigned,
    SeatsScheduledForRemoval,
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
    # R15: the total scheduled for the end of the period, and that period's end.
    scheduled_seats: int | None = None
    scheduled_for: date | None = None

    def at(self, now: datetime) -> PlanState:
        """The plan as it stands at ``now``: a trial ends at ``trial_ends_at`` exactly (R10),
        and a scheduled decrease takes effect at its period's end exactly (R15), whether or
        not the billing run has recorded either yet."""
        if (
            self.status is PlanStatus.TRIALING
            and self.trial_ends_at is not None
            and now >= self.trial_ends_at
        ):
            return replace(self, status=PlanStatus.TRIAL_EXPIRED, seats=0)
        if decrease_due(self, now) and self.scheduled_seats is not None:
            return replace(
                self, seats=self.scheduled_seats, scheduled_seats=None, scheduled_for=None
            )
        return self

    @property
    def available(self) -> int:
        """Empty seats that can be assigned: a pending purchase's total (it will become the
        total) and a scheduled decrease's (R15: R4 must hold when it takes effect) bound them."""
        capacity = self.seats if self.status.grants_access else 0
        for bound in (self.pending_seats, self.scheduled_seats):
            if bound is not None:
                capacity = min(capacity, bound) if capacity else 0
        return max(capacity - self.assigned, 0)

    @property
    def scheduled_at(self) -> datetime | None:
        """When the scheduled decrease takes effect, if one is scheduled."""
        return None if self.scheduled_for is None else effective_at(self.scheduled_for)

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
    """R5: an agent needs a trialing or paid plan and an empty seat; R15: not one of the
    seats a scheduled decrease removes."""
    if not plan.status.grants_access:
        raise NoActivePlan("The plan is not trialing or paid.")
    if plan.available <= 0:
        when = plan.scheduled_at
        if plan.scheduled_seats is not None and when is not None and plan.assigned < plan.seats:
            raise SeatsScheduledForRemoval(
                f"The plan goes down to {plan.scheduled_seats} seats on {when:%Y-%m-%d}, all "
                "of them assigned: cancel the scheduled decrease or buy seats first.",
                scheduled_seats=plan.scheduled_seats,
                effective_at=instant_text(when),
            )
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


# --- R15: scheduled decreases -------------------------------------------------------------


def effective_at(period_end: date) -> datetime:
    """The instant a period ends: 00:00 UTC of its end date (§3: dates are UTC)."""
    return datetime.combine(period_end, time(), UTC)


def instant_text(at: datetime) -> str:
    """A UTC instant as the API writes it (``2026-12-01T00:00:00Z``), for problems and events."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decrease_due(plan: PlanState, now: datetime) -> bool:
    """Whether a scheduled decrease has taken effect at ``now`` (R15): its period ended. A
    purchase still waiting for its payment holds it, as it holds the renewal: if paid it
    cancels the decrease, if not the decrease applies then; never both, never half."""
    return (
        plan.scheduled_seats is not None
        and plan.scheduled_for is not None
        and plan.status.is_paid
        and plan.pending_seats is None
        and now >= effective_at(plan.scheduled_for)
    )


def check_schedule_decrease(plan: PlanState, new_total: int, today: date) -> date:
    """R15, R4: may ``new_total`` be scheduled for the end of the paid period? Its end (the
    period the plan was billed under, R12), at which the decrease takes effect."""
    if not plan.status.is_paid or plan.period is None:
        raise NoPaidPeriod(
            "Only a paid plan has a period to wait for: remove the seats now, or buy first."
        )
    if plan.pending_seats is not None:
        raise PurchaseInProgress("A purchase is waiting for its payment.")
    if not plan.period.start <= today < plan.period.end:
        raise RenewalDue("The plan's renewal is being processed; retry shortly.")
    check_removal(plan, new_total)
    return plan.period.end


def quoted_decrease_at(plan: PlanState, new_total: int) -> datetime:
    """R8, R15: when a quoted decrease for the period's end would take effect (the quote
    itself shows whether the assigned agents allow it)."""
    if not plan.status.is_paid or plan.period is None:
        raise NoPaidPeriod("Only a paid plan has a period to wait for.")
    if new_total >= plan.seats:
        raise NotADecrease(
            f"The new total must be below the current {plan.seats} seats.", current=plan.seats
        )
    return effective_at(plan.period.end)


def check_cancel_schedule(plan: PlanState) -> int:
    """R15: the scheduled total a cancellation drops; refused when none is (any more)."""
    if plan.scheduled_seats is None:
        raise NoScheduledChange("No decrease is scheduled (or it has already taken effect).")
    return plan.scheduled_seats


def schedule_survives_removal(plan: PlanState, new_total: int) -> bool:
    """Whether a scheduled decrease still lowers the total after a removal to ``new_total``
    now (R7): kept if it does, dropped otherwise (the removal went as low or lower)."""
    return plan.scheduled_seats is not None and plan.scheduled_seats < new_total


def seats_at_next_renewal(plan: PlanState) -> int:
    """The seats the plan's next renewal invoices: the scheduled total if a decrease is
    scheduled (R15), else the current total."""
    return plan.seats if plan.scheduled_seats is None else plan.scheduled_seats
