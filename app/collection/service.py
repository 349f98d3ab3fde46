"""Collect an invoice: the only caller of the payment gateway (SPEC §6).

Each call goes in three steps, and the order is what makes it safe:

1. **Claim**, in one transaction with the plan locked (the plan row before anything else of
   the account, as everywhere): re-read the invoice, decide the call from its attempt history
   (``policy.next_send``) and record the attempt (key, payment method, amount). Commit.
2. **Call** the gateway, outside any transaction.
3. **Record** the outcome and settle, in one transaction with the plan locked.

The attempt row is the claim: while it has no outcome, no other collector (a second billing
run, ``/pay``, a purchase retry) sends anything for the invoice, so no key is sent from two
places at once and no success is dropped. A collector that dies mid-call leaves an attempt
without outcome; after ``collection_lease_seconds`` of wall-clock time the next collector
sends the same request under the same key, which the gateway charges at most once.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import Clock
from app.collection import settle
from app.collection.policy import Mode, RetryPolicy, Send, Sent, Wait, next_send
from app.config import Settings
from app.db import Database
from app.directory import repository as directory
from app.errors import NotFound
from app.ledger import repository as ledger
from app.ledger.models import (
    AttemptOperation,
    AttemptOutcome,
    ChargeAttempt,
    ChargeOutcome,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
)
from app.observability import CHARGES
from app.payments.gateway import (
    ChargeSucceeded,
    Gateway,
    GatewayRejected,
    GatewayUnavailable,
)
from app.seats import repository as seats
from app.seats.models import Plan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collected:
    """Where an invoice stands after a collection call."""

    invoice: Invoice
    outcome: AttemptOutcome | None = None  # what this call answered; None when none was made
    wait: Wait | None = None  # why no call was made
    reason: str | None = None  # the decline, outage or refusal, in the gateway's words


@dataclass(frozen=True, slots=True)
class _Claim:
    invoice: Invoice
    send: Send


@dataclass(frozen=True, slots=True)
class _Answer:
    outcome: AttemptOutcome
    reason: str | None = None
    charge_id: str | None = None


def _wall_now() -> datetime:
    return datetime.now(UTC)


class Collector:
    """Collects invoices through the gateway, one attempt at a time."""

    def __init__(self, db: Database, gateway: Gateway, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.gateway = gateway
        self.clock = clock
        self.settings = settings
        self.lease = timedelta(seconds=settings.collection_lease_seconds)
        self.retry = RetryPolicy(
            retry_after=timedelta(hours=settings.renewal_retry_hours),
            max_declines=settings.renewal_max_attempts,
        )

    async def collect(self, invoice_id: str, actor: str, mode: Mode) -> Collected:
        """Charge the invoice if it needs a call now; settle it by the answer."""
        return await self._attempt(invoice_id, actor, mode, void=False)

    async def void(self, invoice_id: str, actor: str) -> Collected:
        """Void the invoice's key (R14); once begun, an invoice is only ever voided."""
        return await self._attempt(invoice_id, actor, Mode.RUN, void=True)

    async def _attempt(self, invoice_id: str, actor: str, mode: Mode, *, void: bool) -> Collected:
        try:
            claimed = await self._claim(invoice_id, actor, mode, void)
        except IntegrityError:
            # Another collector recorded this attempt number first (the plan lock makes this
            # all but impossible): its call stands for ours.
            async with self.db.transaction() as session:
                invoice = await ledger.get_invoice(session, invoice_id)
            assert invoice is not None
            return Collected(invoice, wait=Wait.IN_FLIGHT)
        if isinstance(claimed, Collected):
            return claimed
        answer = await self._call(claimed)
        crash_point(self.settings, "after_charge")
        return await self._record(claimed, answer, actor)

    async def _claim(
        self, invoice_id: str, actor: str, mode: Mode, void: bool
    ) -> _Claim | Collected:
        async with self.db.transaction() as session:
            now = await self.clock.now(session)
            plan, invoice = await _lock(session, invoice_id)
            if invoice.status is not InvoiceStatus.PENDING:
                return Collected(invoice, wait=Wait.SETTLED)
            if invoice.total == 0 and not void:
                # Nothing to charge (a purchase on the last day rounds to 0): paid, no call.
                await settle.apply(
                    session,
                    plan,
                    invoice,
                    AttemptOutcome.SUCCEEDED,
                    reason=None,
                    charge_id=None,
                    now=now,
                    actor=actor,
                )
                return Collected(invoice, outcome=AttemptOutcome.SUCCEEDED)
            tried = await history(session, invoice.id)
            needs_method = not tried or tried[-1].outcome is AttemptOutcome.DECLINED
            decision = next_send(
                tried,
                invoice_id=invoice.id,
                # Only a new key charges the method of now (else the same request is resent).
                payment_method=(
                    await self._method_for_new_key(session, invoice)
                    if needs_method
                    else invoice.payment_method
                ),
                mode=mode,
                now=now,
                wall_now=_wall_now(),
                lease=self.lease,
                retry=self.retry,
                void=void,
            )
            if isinstance(decision, Wait):
                return Collected(invoice, wait=decision)
            await ledger.add_attempt(
                session,
                ChargeAttempt(
                    invoice_id=invoice.id,
                    number=decision.number,
                    operation=decision.operation,
                    gateway_key=decision.key,
                    payment_method=decision.payment_method,
                    amount=invoice.total,
                    currency=invoice.currency,
                    created_by=actor[:80],
                    at=now,
                    sent_at=_wall_now(),
                ),
            )
            return _Claim(invoice, decision)

    async def _method_for_new_key(self, session: AsyncSession, invoice: Invoice) -> str:
        if invoice.kind is InvoiceKind.PURCHASE:
            return invoice.payment_method  # what the admin confirmed
        account = await directory.get_account(session, invoice.account_id)
        return account.payment_method if account is not None else invoice.payment_method

    async def _call(self, claim: _Claim) -> _Answer:
        invoice, send = claim.invoice, claim.send
        try:
            if send.operation is AttemptOperation.VOID:
                voided = await self.gateway.void(idempotency_key=send.key)
                CHARGES.labels("voided").inc()
                return _Answer(
                    AttemptOutcome.VOIDED,
                    reason="voided: no definitive answer from the payments service in time",
                    charge_id=voided.refunded_charge_id,
                )
            result = await self.gateway.charge(
                payment_method=send.payment_method,
                amount=invoice.total,
                currency=invoice.currency,
                idempotency_key=send.key,
                description=f"Conversations seats, invoice {invoice.id}",
            )
        except GatewayUnavailable as exc:
            CHARGES.labels("unavailable").inc()
            log.warning("gateway unavailable for %s (key %s): %s", invoice.id, send.key, exc)
            return _Answer(AttemptOutcome.UNAVAILABLE, reason=str(exc)[:200])
        except GatewayRejected as exc:
            CHARGES.labels("rejected").inc()
            log.error("payments service refused %s (key %s): %s", invoice.id, send.key, exc)
            return _Answer(AttemptOutcome.REJECTED, reason=str(exc)[:200])
        if isinstance(result, ChargeSucceeded):
            CHARGES.labels("succeeded").inc()
            return _Answer(AttemptOutcome.SUCCEEDED, charge_id=result.charge_id)
        CHARGES.labels("declined").inc()
        return _Answer(AttemptOutcome.DECLINED, reason=result.reason[:200])

    async def _record(self, claim: _Claim, answer: _Answer, actor: str) -> Collected:
        async with self.db.transaction() as session:
            now = await self.clock.now(session)
            plan, invoice = await _lock(session, claim.invoice.id)
            await ledger.add_outcome(
                session,
                ChargeOutcome(
                    invoice_id=invoice.id,
                    number=claim.send.number,
                    outcome=answer.outcome,
                    reason=answer.reason,
                    charge_id=answer.charge_id,
                    at=now,
                ),
            )
            if invoice.status is InvoiceStatus.PENDING:
                await settle.apply(
                    session,
                    plan,
                    invoice,
                    answer.outcome,
                    reason=answer.reason,
                    charge_id=answer.charge_id,
                    now=now,
                    actor=actor,
                )
            elif answer.outcome is AttemptOutcome.SUCCEEDED:
                # Only after a stale claim (a collector presumed dead that was not): the
                # money arrived for an invoice closed meanwhile. Loud, for an operator.
                log.error(
                    "charge %s succeeded for invoice %s that is already %s: refund it",
                    answer.charge_id,
                    invoice.id,
                    invoice.status.value,
                )
            return Collected(invoice, outcome=answer.outcome, reason=answer.reason)


async def _lock(session: AsyncSession, invoice_id: str) -> tuple[Plan, Invoice]:
    """The invoice's plan, locked first (the one lock order), then the invoice, read fresh."""
    account_id = await ledger.invoice_account(session, invoice_id)
    if account_id is None:
        raise NotFound(f"No invoice {invoice_id!r}.")
    plan = await seats.lock_plan(session, account_id)
    invoice = await ledger.get_invoice(session, invoice_id, lines=False)
    if plan is None or invoice is None:
        raise NotFound(f"No invoice {invoice_id!r}.")
    return plan, invoice


def _sent(attempt: ChargeAttempt, outcome: ChargeOutcome | None) -> Sent:
    return Sent(
        number=attempt.number,
        operation=attempt.operation,
        key=attempt.gateway_key,
        payment_method=attempt.payment_method,
        at=attempt.at,
        sent_at=attempt.sent_at,
        outcome=None if outcome is None else outcome.outcome,
    )


async def history(session: AsyncSession, invoice_id: str) -> list[Sent]:
    """The invoice's attempts as the policy reads them."""
    return [_sent(a, o) for a, o in await ledger.attempts(session, invoice_id)]


def crash_point(settings: Settings, name: str) -> None:
    """Fault injection for the crash tests: die here, as a power cut would."""
    if settings.fault_point == name:
        log.critical("fault point %s reached: killing the process", name)
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no rollback, no response
