"""Prices of a seat total: what a quote shows and a purchase charges (SPEC §3, R8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from app.billing.periods import BillingCycle, Period, Renewal
from app.billing.proration import Proration, prorate, proration_for, round_half_up
from app.errors import AmountOutOfRange

# R18: every amount fits the ledger's columns (a signed 64-bit integer, BIGINT). A seat total
# is at most MAX_SEATS (an input bound, SPEC §4, not a cap) and a cycle at most 12 months, so
# a monthly price of at most MAX_PRICE keeps every amount inside it: a whole cycle, a prorated
# part of one (never more than the whole) and a line's unit price (price x months) alike.
# Settings refuse a larger price at start; ``fits`` refuses any amount that would not fit
# anyway, so a number the ledger cannot hold is never shown, stored nor charged.
MAX_AMOUNT = 2**63 - 1
MAX_SEATS = 1_000_000_000
MAX_PRICE = MAX_AMOUNT // (MAX_SEATS * 12)


def fits(*amounts: int) -> None:
    """Refuse (``AmountOutOfRange``) amounts the ledger's columns cannot hold."""
    for amount in amounts:
        if not -MAX_AMOUNT <= amount <= MAX_AMOUNT:
            raise AmountOutOfRange(
                f"The amount {amount} does not fit the ledger (at most {MAX_AMOUNT} minor "
                "units): the seat price or the total is too large."
            )


@dataclass(frozen=True, slots=True)
class PriceChange:
    current_seats: int
    seats: int
    unit_price: int
    billing_cycle: BillingCycle
    monthly_total: int
    cycle_total: int
    due_now: int
    charged_seats: int
    proration: Proration

    @property
    def period(self) -> Period:
        """The period the change is prorated over."""
        return Period(self.proration.period_start, self.proration.period_end)

    @property
    def change(self) -> int:
        return self.seats - self.current_seats


def cycle_total(seats: int, unit_price: int, cycle: BillingCycle) -> int:
    """What ``seats`` seats cost for one whole billing cycle (a renewal's amount)."""
    total = seats * unit_price * cycle.months
    fits(total)
    return total


def renewal_amount(seats: int, unit_price: int, cycle: BillingCycle, renewal: Renewal) -> int:
    """What a renewal bills (§3): the whole cycle, or for a bridge only the days from the old
    period's end, exactly what a purchase of those seats on that date would cost."""
    amount = round_half_up(
        seats * unit_price * cycle.months * renewal.billed.days, renewal.period.days
    )
    fits(amount, unit_price * cycle.months)
    return amount


def price_change(
    *,
    current_seats: int,
    seats: int,
    paid_seats: int,
    unit_price: int,
    cycle: BillingCycle,
    period: Period,
    today: date,
) -> PriceChange:
    """Price a move from ``current_seats`` to ``seats`` on ``today``.

    ``paid_seats`` is how many seats are already paid for this period (0 out of a trial or
    when nothing was bought yet): only seats above it are charged now. A decrease charges
    nothing and refunds nothing (R7).
    """
    proration = proration_for(period, today)
    charged = max(seats - paid_seats, 0)
    change = PriceChange(
        current_seats=current_seats,
        seats=seats,
        unit_price=unit_price,
        billing_cycle=cycle,
        monthly_total=seats * unit_price,
        cycle_total=cycle_total(seats, unit_price, cycle),
        due_now=prorate(charged, unit_price, cycle.months, proration),
        charged_seats=charged,
        proration=proration,
    )
    fits(change.monthly_total, change.due_now, unit_price * cycle.months)
    return change
