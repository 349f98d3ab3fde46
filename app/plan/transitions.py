"""What each event does to a plan (SPEC §2, §3, R3, R4, R6, R7, R9, R10, R12, R14), as pure
functions of plain values: no I/O, no clock.

Each answers the plan's columns an event changes (a ``Change``), or None when the event finds
nothing to do in the plan's present state. The rules that refuse a request
(``app.seats.rules``) are asked first; ``app.plan.repository`` is the one module that writes a
``Change`` (and the plan's ``updated_at`` with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from app.billing.periods import BillingCycle, Period
from app.seats.rules import Trial
from app.seats.status import PlanStatus


@dataclass(frozen=True, slots=True)
class Change:
    """The plan's columns an event sets, by name (empty: only ``updated_at`` moves)."""

    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __or__(self, other: Change) -> Change:
        return Change(MappingProxyType({**self.values, **other.values}))


def _change(**values: Any) -> Change:
    return Change(MappingProxyType(values))


def open_plan() -> Change:
    """A new account's plan: nothing bought, nothing assigned."""
    return _change(status=PlanStatus.NONE, seats=0, assigned=0)


def start_trial(trial: Trial) -> Change:
    """R3: the trial's free seats, from now to its end (``rules.start_trial`` allowed it)."""
    return _change(
        status=PlanStatus.TRIALING,
        seats=trial.seats,
        trial_started_at=trial.started_at,
        trial_ends_at=trial.ends_at,
    )


def expire_trial(
    status: PlanStatus, trial_ends_at: datetime | None, now: datetime
) -> Change | None:
    """R10: an ended trial keeps its assignments and loses its seats."""
    if status is not PlanStatus.TRIALING or trial_ends_at is None or trial_ends_at > now:
        return None
    return _change(status=PlanStatus.TRIAL_EXPIRED, seats=0)


def note_purchase(invoice_id: Any, seats: Any) -> Change:
    """R6, R14: a purchase waits for its payment; ``seats`` is the total it will set.

    (The values may be a statement's parameters: the purchase writes this with its invoice.)
    """
    return _change(pending_invoice_id=invoice_id, pending_seats=seats)


def close_purchase(pending_invoice_id: str | None, invoice_id: str) -> Change:
    """R14: the purchase ``invoice_id`` was paid, declined or voided: the plan waits no more,
    if it was waiting for that one."""
    if pending_invoice_id != invoice_id:
        return Change()
    return _change(pending_invoice_id=None, pending_seats=None)


def raise_seats(seats: int) -> Change:
    """R6: a paid plan's purchase is paid: the new, higher total."""
    return _change(seats=seats)


def restart(seats: int, period: Period, cycle: BillingCycle | None) -> Change:
    """R6, R9: a purchase paid out of a trial, an expired trial, a canceled plan or nothing
    starts the paid plan on the period (and cycle) it was priced over."""
    return _change(
        seats=seats,
        period_start=period.start,
        period_end=period.end,
        billing_cycle=cycle,
        status=PlanStatus.ACTIVE,
    )


def purchase_paid(
    status: PlanStatus,
    pending_invoice_id: str | None,
    invoice_id: str,
    seats: int,
    period: Period,
    cycle: BillingCycle | None,
) -> Change:
    """A purchase's payment: ``raise_seats`` or ``restart``, and the plan waits no more."""
    paid = raise_seats(seats) if status.is_paid else restart(seats, period, cycle)
    return paid | close_purchase(pending_invoice_id, invoice_id)


def lower(seats: int) -> Change:
    """R4, R7: fewer seats at once (``rules.check_removal`` allowed it); nothing refunded."""
    return _change(seats=seats)


def schedule_decrease(seats: int, period_end: date) -> Change:
    """R15: a lower total for the end of the paid period (``rules.check_schedule_decrease``
    allowed it), replacing any earlier schedule; the seats stay until then."""
    return _change(scheduled_seats=seats, scheduled_for=period_end)


def drop_schedule() -> Change:
    """R15: no decrease scheduled any more (canceled, bought over, removed past, or the plan
    canceled)."""
    return _change(scheduled_seats=None, scheduled_for=None)


def apply_schedule(scheduled_seats: int | None) -> Change | None:
    """R15: the scheduled decrease took effect at its period's end: its total is the plan's
    (``rules.decrease_due`` judged it due). None when nothing is scheduled."""
    if scheduled_seats is None:
        return None
    return lower(scheduled_seats) | drop_schedule()


def renew(period: Period, cycle: BillingCycle) -> Change:
    """R9, R12: the plan moves into its next whole period, billed under the account's cycle
    of now. A bridge (§3, an old end off the schedule's boundaries) moves the plan the same
    way: only its invoice bills fewer days."""
    return _change(period_start=period.start, period_end=period.end, billing_cycle=cycle)


def go_past_due(status: PlanStatus) -> Change | None:
    """R9, R18: a renewal declined or not invoiced: an active plan becomes past due (its
    agents keep access through the dunning window)."""
    if status is not PlanStatus.ACTIVE:
        return None
    return _change(status=PlanStatus.PAST_DUE)


def recover(status: PlanStatus) -> Change | None:
    """R9: the last owed renewal is paid: a past-due plan is active again (the caller checked
    that no other renewal is owed)."""
    if status is not PlanStatus.PAST_DUE:
        return None
    return _change(status=PlanStatus.ACTIVE)


def cancel() -> Change:
    """R9: dunning ended: 0 seats, no period; assignments are kept (without access) and a
    later purchase restarts the plan (``restart``)."""
    return _change(
        status=PlanStatus.CANCELED, seats=0, period_start=None, period_end=None, billing_cycle=None
    )


def period_of(start: date | None, end: date | None) -> Period | None:
    """The plan's paid period, if it has one."""
    return Period(start, end) if start is not None and end is not None else None
