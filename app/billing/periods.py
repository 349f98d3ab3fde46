"""Billing periods, derived from the account's billing anchor.

A period is a half-open range of UTC calendar dates ``[start, end)``. Periods are always computed
from the anchor, never chained from the previous period: chaining would lose the anchor's day
after one short month (31 Jan -> 28 Feb -> 28 Mar instead of 31 Mar).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class BillingCycle(StrEnum):
    MONTHLY = "monthly"
    YEARLY = "yearly"

    @property
    def months(self) -> int:
        """Months in one cycle: 1 or 12 (there is no yearly discount)."""
        return 1 if self is BillingCycle.MONTHLY else 12


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date

    @property
    def days(self) -> int:
        """Whole days in the period."""
        return (self.end - self.start).days


def add_months(anchor: date, months: int) -> date:
    """The anchor moved by ``months``, its day clamped to the last day of a shorter month."""
    index = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(anchor.day, calendar.monthrange(year, month)[1]))


def period_containing(anchor: date, cycle: BillingCycle, day: date) -> Period:
    """The billing period of ``cycle`` anchored at ``anchor`` that contains ``day``."""
    step = cycle.months
    # Start from the number of whole cycles between the anchor's month and the day's month,
    # then correct by one in either direction for the day of the month.
    k = ((day.year - anchor.year) * 12 + (day.month - anchor.month)) // step
    while add_months(anchor, k * step) > day:
        k -= 1
    while add_months(anchor, (k + 1) * step) <= day:
        k += 1
    return Period(add_months(anchor, k * step), add_months(anchor, (k + 1) * step))


@dataclass(frozen=True, slots=True)
class Renewal:
    """The period a renewal moves the plan into, and the days its invoice bills (R12, §3).

    ``period`` is always a whole period of the schedule in force at renewal. ``billed`` runs
    from the old period's end to ``period.end``: the whole period, unless the anchor or the
    cycle changed so that the old end is not one of the new schedule's boundaries (a bridge).
    """

    period: Period
    billed: Period

    @property
    def is_bridge(self) -> bool:
        """True when the renewal bills only part of ``period``."""
        return self.billed != self.period


def renewal_after(anchor: date, cycle: BillingCycle, paid: Period) -> Renewal:
    """The renewal that follows the paid period ``paid`` under ``anchor`` and ``cycle``."""
    following = period_containing(anchor, cycle, paid.end)
    return Renewal(period=following, billed=Period(paid.end, following.end))
