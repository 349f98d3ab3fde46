"""The retry schedule and what an answer means: pure rules, no I/O (Standard Webhooks)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

# Each delay runs from the failure of the attempt before it, as Svix and the Standard
# Webhooks specification do: ten attempts in all, over about three and a half days.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
# An endpoint that has answered nothing but failures for this long is disabled.
DISABLE_AFTER = timedelta(days=5)


class Outcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # will be retried
    EXHAUSTED = "exhausted"  # the last attempt of the schedule failed
    GONE = "gone"  # 410: the endpoint is disabled at once


def next_attempt_at(failed_attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``failed_attempts`` failures in a row; None when spent."""
    if failed_attempts > len(RETRY_DELAYS):
        return None
    return now + RETRY_DELAYS[failed_attempts - 1]


def outcome_of(status_code: int | None, failed_attempts_after: int) -> Outcome:
    """What an answer (None: no answer) means for the delivery."""
    if status_code is not None and 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code == 410:
        return Outcome.GONE
    if failed_attempts_after > len(RETRY_DELAYS):
        return Outcome.EXHAUSTED
    return Outcome.FAILED


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    """Five days of nothing but failures (the Svix rule)."""
    return failing_since is not None and now - failing_since >= DISABLE_AFTER
