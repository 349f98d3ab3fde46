"""An independent model of SPEC §3, R12 and R15 (with R3, R4, R6, R7, R9, R10 around them), for
the scenario tests to check the service against.

It imports nothing from ``app``: the period arithmetic and the rounding are written again here,
from the SPEC's words, so a defect in the service's own pricing code cannot hide in both. It is
deliberately plain: periods are recomputed from the anchor every time (never chained from the
previous period), money is integers, and the plan remembers the period and the cycle it was billed
under, apart from the account's settings, which may change at any time (R12).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

MONTHS_IN_CYCLE = {"monthly": 1, "yearly": 12}
TRIAL_SEATS = 20  # SEATS_TRIAL_SEATS' default
TRIAL_DAYS = 14  # SEATS_TRIAL_DAYS' default


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` (both non-negative) to the nearest integer, halves up."""
    assert numerator >= 0 and denominator > 0
    quotient, remainder = divmod(numerator, denominator)
    return quotient + (1 if 2 * remainder >= denominator else 0)


def shift_months(anchor: date, months: int) -> date:
    """``anchor`` moved by ``months`` whole months, its day clamped to the target month's end."""
    year, month0 = divmod(anchor.year * 12 + anchor.month - 1 + months, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(anchor.day, last))


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def as_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def boundary(anchor: date, cycle: str, k: int) -> date:
    """The ``k``-th boundary of the schedule (``k`` may be negative), straight from the anchor."""
    return shift_months(anchor, k * MONTHS_IN_CYCLE[cycle])


def period_containing(anchor: date, cycle: str, day: date) -> Period:
    """The period ``[start, end)`` of the schedule (anchor, cycle) that contains ``day``."""
    # A coarse guess from the month difference, then a walk; each boundary is computed from the
    # anchor itself, so a clamped day (31 -> 28) never sticks to later periods.
    k = ((day.year - anchor.year) * 12 + day.month - anchor.month) // MONTHS_IN_CYCLE[cycle]
    while boundary(anchor, cycle, k) > day:
        k -= 1
    while boundary(anchor, cycle, k + 1) <= day:
        k += 1
    return Period(boundary(anchor, cycle, k), boundary(anchor, cycle, k + 1))


def prorated(seats: int, price: int, months: int, days_remaining: int, days_in_period: int) -> int:
    """SPEC §3's due_now: seats x price x months x days_remaining / days_in_period, halves up."""
    return round_half_up(seats * price * months * days_remaining, days_in_period)


@dataclass(frozen=True)
class ExpectedInvoice:
    """What one invoice of the ledger must say (one line per invoice)."""

    kind: str  # "purchase" | "renewal"
    total: int
    quantity: int
    period_start: date  # of the line
    period_end: date

    def key(self) -> tuple[str, str, str, int, int]:
        return (
            self.period_start.isoformat(),
            self.period_end.isoformat(),
            self.kind,
            self.quantity,
            self.total,
        )


@dataclass(frozen=True)
class Quote:
    due_now: int
    period: Period
    days_remaining: int


@dataclass
class AccountModel:
    """One account: its settings (anchor, cycle) and its plan, as the SPEC says they evolve."""

    anchor: date
    cycle: str
    price: int = 1900
    status: str = "none"
    seats: int = 0
    assigned: set[str] = field(default_factory=set)
    trial_used: bool = False
    trial_ends_at: datetime | None = None
    # The plan's own period and the cycle it was billed under (R12); None until a purchase.
    period: Period | None = None
    plan_cycle: str | None = None
    # R15: a lower total scheduled for the end of ``period``, or None.
    scheduled: int | None = None
    invoices: list[ExpectedInvoice] = field(default_factory=list)

    # --- settings -----------------------------------------------------------------------------

    def change_settings(self, *, anchor: date, cycle: str) -> None:
        """The platform changes the account's anchor or cycle: the plan keeps what it was billed."""
        self.anchor, self.cycle = anchor, cycle

    # --- what is charged ----------------------------------------------------------------------

    @property
    def paid(self) -> bool:
        return self.status in ("active", "past_due")

    @property
    def grants_access(self) -> bool:
        return self.status in ("trialing", "active", "past_due")

    def pricing(self, today: date) -> tuple[Period, int, int]:
        """(period, months_in_cycle, seats already paid) that a purchase today is priced with."""
        if self.paid:
            assert self.period is not None and self.plan_cycle is not None
            assert self.period.start <= today < self.period.end, "renewal overdue"
            return self.period, MONTHS_IN_CYCLE[self.plan_cycle], self.seats
        # Out of none, a trial, or an expired trial: the account's current schedule, all seats.
        return period_containing(self.anchor, self.cycle, today), MONTHS_IN_CYCLE[self.cycle], 0

    def quote(self, seats: int, today: date) -> Quote:
        """R8: what a purchase to ``seats`` would charge today (0 for a decrease)."""
        period, months, paid_seats = self.pricing(today)
        days_remaining = (period.end - today).days
        added = max(seats - paid_seats, 0)
        return Quote(
            prorated(added, self.price, months, days_remaining, period.days), period, days_remaining
        )

    # --- the rules: each returns the refusal's code, or None and applies the change -------------

    def start_trial(self, now: datetime) -> str | None:
        """R3."""
        if self.trial_used:
            return "trial_already_used"
        if self.paid:
            return "already_subscribed"
        self.trial_used = True
        self.status, self.seats = "trialing", TRIAL_SEATS
        self.trial_ends_at = now + timedelta(days=TRIAL_DAYS)
        return None

    def purchase(self, seats: int, today: date) -> str | None:
        """R6, R4, §3: raise the total to ``seats``, recording the invoice it costs."""
        period, months, paid_seats = self.pricing(today)
        if seats <= paid_seats or seats == 0:
            return "not_an_increase"
        if seats < len(self.assigned):
            return "seats_assigned"
        added = seats - paid_seats
        days_remaining = (period.end - today).days
        total = prorated(added, self.price, months, days_remaining, period.days)
        self.invoices.append(ExpectedInvoice("purchase", total, added, today, period.end))
        if not self.paid:
            self.period, self.plan_cycle = period, self.cycle
        self.status, self.seats = "active", seats
        self.scheduled = None  # R15: the admin wants more seats, not fewer
        return None

    def remove(self, seats: int) -> str | None:
        """R4, R7: lower the total; no money moves. A scheduled decrease that would no longer
        lower it is dropped."""
        if not self.paid:
            return "no_active_plan"
        if seats >= self.seats:
            return "not_a_decrease"
        if seats < len(self.assigned):
            return "seats_assigned"
        self.seats = seats
        if self.scheduled is not None and self.scheduled >= seats:
            self.scheduled = None
        return None

    def schedule(self, seats: int, today: date) -> str | None:
        """R15: lower the total to ``seats`` at the end of the paid period (one at a time)."""
        if not self.paid or self.period is None:
            return "no_paid_period"
        if not self.period.start <= today < self.period.end:
            return "renewal_due"
        if seats >= self.seats:
            return "not_a_decrease"
        if seats < len(self.assigned):
            return "seats_assigned"
        self.scheduled = seats
        return None

    def cancel_schedule(self) -> str | None:
        """R15: ``DELETE /scheduled-change``."""
        if self.scheduled is None:
            return "no_scheduled_change"
        self.scheduled = None
        return None

    def next_renewal_total(self, seats: int, today: date) -> int:
        """What the renewal after the period a purchase today is priced over bills for
        ``seats``, in the account's schedule of today (R12)."""
        period, _, _ = self.pricing(today)
        return self.renewal_total(seats, period.end)[0]

    def renewal_total(self, seats: int, old_end: date) -> tuple[int, Period]:
        new = period_containing(self.anchor, self.cycle, old_end)
        months = MONTHS_IN_CYCLE[self.cycle]
        if new.start == old_end:
            return seats * self.price * months, new
        return prorated(seats, self.price, months, (new.end - old_end).days, new.days), new

    def assign(self, user_id: str) -> str | None:
        """R5 (assigning an agent again is a no-op success)."""
        if not self.grants_access:
            return "no_active_plan"
        if user_id in self.assigned:
            return None
        if len(self.assigned) >= self.seats:
            return "no_empty_seat"
        if self.scheduled is not None and len(self.assigned) >= self.scheduled:
            return "seats_scheduled_for_removal"
        self.assigned.add(user_id)
        return None

    def unassign(self, user_id: str) -> str | None:
        if user_id not in self.assigned:
            return "not_an_agent"
        self.assigned.discard(user_id)
        return None

    # --- time -----------------------------------------------------------------------------------

    def next_boundary(self) -> datetime | None:
        """The next instant at which the billing run has something to do for this account."""
        if self.status == "trialing":
            return self.trial_ends_at
        if self.paid:
            assert self.period is not None
            return datetime.combine(self.period.end, time(), UTC)
        return None

    def run_billing(self, now: datetime) -> None:
        """R10 and R9/R12: what a billing run at ``now`` does (missed periods one at a time)."""
        ended = self.trial_ends_at is not None and now >= self.trial_ends_at
        if self.status == "trialing" and ended:
            self.status, self.seats = "trial_expired", 0
        while self.paid and self.period is not None and self.period.end <= now.date():
            self.renew()

    def renew(self) -> None:
        """One renewal: under the account's current schedule, the period that contains the old
        end ``E``; a whole one when ``E`` starts it, otherwise a bridge prorated from ``E``."""
        assert self.period is not None
        old_end = self.period.end
        if self.scheduled is not None:  # R15: the decrease took effect at this end
            self.seats, self.scheduled = self.scheduled, None
        total, new = self.renewal_total(self.seats, old_end)
        if self.seats:
            self.invoices.append(ExpectedInvoice("renewal", total, self.seats, old_end, new.end))
        self.period, self.plan_cycle = new, self.cycle

    def summary(self) -> dict[str, object]:
        """The fields of the plan summary the model predicts."""
        scheduled = None
        if self.scheduled is not None and self.period is not None:
            end = datetime.combine(self.period.end, time(), UTC)
            scheduled = {
                "seats": self.scheduled,
                "effective_at": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        return {
            "status": self.status,
            "seats": self.seats,
            "assigned": len(self.assigned),
            "current_period": self.period.as_json() if self.paid and self.period else None,
            "scheduled_change": scheduled,
        }
