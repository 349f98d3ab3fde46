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


def next_period(anchor: date, cycle: BillingCycle, period: Period) -> Period:
    """The period that follows ``period`` (it starts on ``period.end``)."""
    following = period_containing(anchor, cycle, period.end)
    if following.start != period.end:
        # The anchor or cycle changed since ``period`` was billed: bridge the gap so that
        # periods stay contiguous, ending on the new schedule's next boundary.
        return Period(period.end, following.end)
    return following
