"""Which gateway call an invoice needs next, as a pure function of its attempts (SPEC §6, R9).

Every call is an attempt row committed before the call, so the history says everything: an
attempt without an outcome is in flight (or its collector died, once the lease has passed),
an unknown outcome is asked again under the same key with the very same request, and only a
decline moves on to a new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from app.ledger.attempts import AttemptOperation, AttemptOutcome


class Mode(StrEnum):
    """Who collects: the purchase request, an admin's ``/pay``, or the billing run."""

    REQUEST = "request"
    MANUAL = "manual"
    RUN = "run"


@dataclass(frozen=True, slots=True)
class Sent:
    """An attempt as the history holds it."""

    number: int
    operation: AttemptOperation
    key: str
    payment_method: str
    at: datetime
    sent_at: datetime
    outcome: AttemptOutcome | None


@dataclass(frozen=True, slots=True)
class Send:
    """Make attempt ``number``: ``operation`` under ``key``, charging ``payment_method``."""

    number: int
    operation: AttemptOperation
    key: str
    payment_method: str


class Wait(StrEnum):
    """Why no call is made now."""

    IN_FLIGHT = "in_flight"  # another collector's call has not answered yet
    NOT_DUE = "not_due"  # the retry policy says later
    EXHAUSTED = "exhausted"  # the run made all its automatic retries; only /pay retries
    SETTLED = "settled"  # the history already has a definitive success or void


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Automatic retries of declined renewals by the billing run."""

    retry_after: timedelta
    max_declines: int


def key_for(invoice_id: str, declines: int) -> str:
    """The gateway key of the attempt after ``declines`` declines (the invoice id first)."""
    return invoice_id if declines == 0 else f"{invoice_id}-{declines}"


def next_send(
    history: Sequence[Sent],
    *,
    invoice_id: str,
    payment_method: str,
    mode: Mode,
    now: datetime,
    wall_now: datetime,
    lease: timedelta,
    retry: RetryPolicy,
    void: bool = False,
) -> Send | Wait:
    """The next call for the invoice, or why none is made now.

    ``payment_method`` is what a new key charges (the account's method of now: a customer who
    replaced a declined card must be able to pay); a call under a key already sent repeats
    that call's method, since a different request under the same key could be refused as a
    reused key and then charged again under a new one.
    """
    number = len(history) + 1
    last = history[-1] if history else None
    if last is not None and last.outcome is None and wall_now - last.sent_at < lease:
        return Wait.IN_FLIGHT
    if last is not None and last.outcome in (AttemptOutcome.SUCCEEDED, AttemptOutcome.VOIDED):
        return Wait.SETTLED
    charges = [s for s in history if s.operation is AttemptOperation.CHARGE]
    if void or any(s.operation is AttemptOperation.VOID for s in history):
        # Once voiding has begun, only voids follow: a charge after it could succeed after
        # the void and stay charged.
        key = charges[-1].key if charges else invoice_id
        method = charges[-1].payment_method if charges else payment_method
        return Send(number, AttemptOperation.VOID, key, method)
    if last is None:
        return Send(number, AttemptOperation.CHARGE, key_for(invoice_id, 0), payment_method)
    if last.outcome is not AttemptOutcome.DECLINED:
        # Unknown outcome (no answer, a dead collector, or a request the service refused):
        # the same request under the same key, which the gateway charges at most once.
        return Send(number, AttemptOperation.CHARGE, last.key, last.payment_method)
    declines = [s for s in charges if s.outcome is AttemptOutcome.DECLINED]
    if mode is Mode.RUN:
        if len(declines) >= retry.max_declines:
            return Wait.EXHAUSTED
        if now - last.at < retry.retry_after:
            return Wait.NOT_DUE
    return Send(number, AttemptOperation.CHARGE, key_for(invoice_id, len(declines)), payment_method)


def first_decline_at(history: Sequence[Sent]) -> datetime | None:
    """When the invoice was first declined (dunning counts from there, R9)."""
    for sent in history:
        if sent.outcome is AttemptOutcome.DECLINED:
            return sent.at
    return None


def dunning_ends_at(past_due_since: datetime, dunning_days: int) -> datetime:
    """When a plan past due since ``past_due_since`` is canceled unless paid (R9): the first
    billing run from then on cancels it."""
    return past_due_since + timedelta(days=dunning_days)


def in_flight(history: Sequence[Sent], wall_now: datetime, lease: timedelta) -> bool:
    """Whether a call of this invoice may still be under way."""
    return bool(history) and history[-1].outcome is None and wall_now - history[-1].sent_at < lease
