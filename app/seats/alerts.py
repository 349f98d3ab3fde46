"""R16's facts, as pure functions of plain values (no I/O, no clock): which seat-usage
thresholds a change crossed, and which alerts are in force for a plan at a moment.

Usage is ``assigned / seats`` of a plan that grants access, as a percentage; a threshold T
is reached when ``assigned * 100 >= T * seats`` (integers: 4 of 5 seats is exactly 80 %).
A plan with no seats, or none that grant access (an expired trial, a canceled plan), has no
usage and reaches nothing.

**A crossing** is any change, under the plan's lock, that moves usage from below a threshold
to at or above it: an assignment, and also a lower total (a removal that leaves 10 of 10
seats assigned is the moment the account is full, and the admins who assign agents are not
the primary admin who removed the seats). Usage falling below a threshold (an unassignment,
a purchase) re-arms it: the next rise is a new crossing. No state is kept for it: the rise
is read from the counts before and after the change, which the plan's lock makes exact.
A change that jumps over several thresholds crosses each of them, lowest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from app.billing.periods import BillingCycle, Period, renewal_after
from app.billing.pricing import renewal_amount
from app.seats.rules import PlanState, seats_at_next_renewal
from app.seats.status import PlanStatus

TRIAL_ENDING_LEAD = timedelta(days=3)
RENEWAL_UPCOMING_LEAD = timedelta(days=7)
# ``seats.exhausted`` is sent at most once per account in this window (service time).
EXHAUSTED_EVERY = timedelta(hours=1)

AlertType = Literal[
    "seats.threshold_reached", "seats.exhausted", "trial.ending", "renewal.upcoming"
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Assigned seats of ``seats`` that grant access (0 when none do)."""

    assigned: int
    seats: int


def usage(state: PlanState) -> Usage:
    """The usage of ``state`` (already taken ``.at(now)``): no seats when it grants no access."""
    return Usage(state.assigned, state.seats if state.status.grants_access else 0)


def reached(thresholds: Sequence[int], now: Usage) -> list[int]:
    """The thresholds usage is at or above, lowest first."""
    if now.seats <= 0:
        return []
    return [t for t in sorted(thresholds) if now.assigned * 100 >= t * now.seats]


def crossed(thresholds: Sequence[int], before: Usage, after: Usage) -> list[int]:
    """The thresholds a change from ``before`` to ``after`` crossed upwards, lowest first."""
    was = set(reached(thresholds, before))
    return [t for t in reached(thresholds, after) if t not in was]


def renewal_at(period: Period) -> datetime:
    """When a period's renewal is charged: the start of its end date, UTC."""
    return datetime.combine(period.end, time(), UTC)


@dataclass(frozen=True, slots=True)
class Renewal:
    """The next renewal of a paid plan: when, and what it is expected to charge."""

    at: datetime
    seats: int
    amount: int


def next_renewal(
    state: PlanState, *, anchor: date, cycle: BillingCycle, unit_price: int
) -> Renewal | None:
    """The next renewal of an active plan, priced as the billing run will invoice it (the
    account's anchor and cycle of now, a bridge when they changed, R12); None otherwise."""
    if state.status is not PlanStatus.ACTIVE or state.period is None:
        return None
    seats = seats_at_next_renewal(state)
    amount = renewal_amount(seats, unit_price, cycle, renewal_after(anchor, cycle, state.period))
    return Renewal(renewal_at(state.period), seats, amount)


def trial_ending_due(state: PlanState, now: datetime) -> bool:
    """``trial.ending`` is owed from 3 days before the trial's end until it ends (a trial
    shorter than that owes it from its start)."""
    return (
        state.status is PlanStatus.TRIALING
        and state.trial_ends_at is not None
        and state.trial_ends_at - TRIAL_ENDING_LEAD <= now < state.trial_ends_at
    )


def renewal_upcoming_due(renewal: Renewal | None, now: datetime) -> bool:
    """``renewal.upcoming`` is owed from 7 days before a renewal that charges something until
    it happens (a plan bought closer to its renewal than that owes it at once)."""
    return (
        renewal is not None
        and renewal.amount > 0
        and renewal.at - RENEWAL_UPCOMING_LEAD <= now < renewal.at
    )


@dataclass(frozen=True, slots=True)
class Alert:
    """A fact in force now, for the page's banners."""

    type: AlertType
    threshold: int | None = None
    at: datetime | None = None
    amount: int | None = None


def alerts(
    state: PlanState, now: datetime, thresholds: Sequence[int], renewal: Renewal | None
) -> list[Alert]:
    """The R16 facts in force for ``state`` (already taken ``.at(now)``) at ``now``."""
    found: list[Alert] = []
    highest = reached(thresholds, usage(state))
    if highest:
        found.append(Alert("seats.threshold_reached", threshold=highest[-1]))
    if state.status.grants_access and state.available == 0:
        found.append(Alert("seats.exhausted"))
    if trial_ending_due(state, now):
        found.append(Alert("trial.ending", at=state.trial_ends_at))
    if renewal is not None and renewal_upcoming_due(renewal, now):
        found.append(Alert("renewal.upcoming", at=renewal.at, amount=renewal.amount))
    return found
