"""Proration by whole days, in integers (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from app.billing.periods import Period


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves away from zero.

    The one place money is rounded. Integer arithmetic only: a float would lose cents on
    large seat counts long before the amounts leave a 64-bit integer.
    """
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if numerator < 0:
        return -round_half_up(-numerator, denominator)
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True, slots=True)
class Proration:
    period_start: date
    period_end: date
    days_remaining: int
    days_in_period: int


def proration_for(period: Period, today: date) -> Proration:
    """Whole days left in ``period`` counting ``today``, and the days in the period."""
    if not period.start <= today < period.end:
        raise ValueError(f"{today} is outside the period {period.start}..{period.end}")
    return Proration(period.start, period.end, (period.end - today).days, period.days)


def prorate(seats: int, unit_price: int, months: int, proration: Proration) -> int:
    """What ``seats`` seats cost for the rest of the period: the SPEC's ``due_now``."""
    return round_half_up(
        seats * unit_price * months * proration.days_remaining, proration.days_in_period
    )
