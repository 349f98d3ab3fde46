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

Claims and records take a batch of invoices as readily as one (the same few Core statements,
``app.collection.repository``): the billing run claims a chunk of renewals per transaction and
records the answers that have arrived together, which is what lets one run keep its calls in
flight without spending its CPU on the database. A purchase asks the engine to ``open`` its
invoice in the purchase's transaction: the invoice and its first attempt are written
together (``app.collection.opening``), so the two commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import Clock
from app.collection import opening, settle
from app.collection import repository as repo
from app.collection.policy import Mode, RetryPolicy, Send, Wait, next_send
from app.collection.repository import InvoiceState
from app.config import Settings
from app.db import Database
from app.errors import NotFound
from app.ledger.models import (
    AttemptOperation,
    AttemptOutcome,
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
from app.plan import repository as plan_repo
from app.plan.repository import SettlingPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collected:
    """Where an invoice stands after a collection call."""

    invoice: InvoiceState
    outcome: AttemptOutcome | None = None  # what this call answered; None when none was made
    wait: Wait | None = None  # why no call was made
    reason: str | None = None  # the decline, outage or refusal, in the gateway's words


@dataclass(frozen=True, slots=True)
class Claim:
    """An attempt committed and not yet sent: the right, and the duty, to make the call."""

    invoice: InvoiceState
    send: Send


@dataclass(frozen=True, slots=True)
class Answer:
    """What the gateway answered to a claim."""

    outcome: AttemptOutcome
    reason: str | None = None
    charge_id: str | None = None


@dataclass(frozen=True, slots=True)
class Opened:
    """An invoice a request opened (with the claim of its first call) or found opened by an
    earlier try of the same request (no claim: ``finish`` decides what it needs)."""

    invoice_id: str
    claim: Claim | None = None


@dataclass
class Claimed:
    """What claiming a batch of invoices came to."""

    claims: list[Claim] = field(default_factory=list)  # to send now
    done: list[Collected] = field(default_factory=list)  # no call needed, or none now
    skipped: list[str] = field(default_factory=list)  # plans another transaction held


def _wall_now() -> datetime:
    return datetime.now(UTC)


def _attempt_row(invoice: InvoiceState, send: Send, actor: str, now: datetime) -> dict[str, Any]:
    return {
        "invoice_id": invoice.id,
        "number": send.number,
        "operation": send.operation,
        "gateway_key": send.key,
        "payment_method": send.payment_method,
        "amount": invoice.total,
        "currency": invoice.currency,
        "created_by": actor[:80],
        "at": now,
        "sent_at": _wall_now(),
    }


class Collector:
    """Collects invoices through the gateway: claim, call, record (see the module doc).

    ``collect`` and ``void`` do one invoice; the billing run uses ``claim``, ``send`` and
    ``record`` directly on batches; a purchase ``open``s its invoice (with its first attempt)
    in its own transaction and ``finish``es it after the commit.
    """

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
        return await self._one(invoice_id, actor, mode, void=False)

    async def void(self, invoice_id: str, actor: str) -> Collected:
        """Void the invoice's key (R14); once begun, an invoice is only ever voided."""
        return await self._one(invoice_id, actor, Mode.RUN, void=True)

    async def complete(self, claim: Claim, actor: str) -> Collected:
        """Make a claimed call and record its answer."""
        answer = await self.send(claim)
        (done,) = await self.record([(claim, answer)], actor)
        return done

    async def _one(self, invoice_id: str, actor: str, mode: Mode, *, void: bool) -> Collected:
        claimed = await self.claim([invoice_id], actor, mode, void=void)
        if claimed.done:
            return claimed.done[0]
        if not claimed.claims:
            raise NotFound(f"No invoice {invoice_id!r}.")
        return await self.complete(claimed.claims[0], actor)

    # --- 1. claim ----------------------------------------------------------------------

    async def claim(
        self,
        invoice_ids: Sequence[str],
        actor: str,
        mode: Mode,
        *,
        void: bool = False,
        skip_locked: bool = False,
    ) -> Claimed:
        """Decide and record the next attempt of each invoice, in one transaction with their
        plans locked; committed before any call is made.

        With ``skip_locked``, invoices whose plan another transaction holds are left out
        (``skipped``): a second billing run is claiming them, or a request is changing the
        plan; the caller may come back to them. Unknown invoices are left out too.
        """
        try:
            async with self.db.transaction() as session:
                now = await self.clock.now(session)
                return await self._claim(session, invoice_ids, actor, mode, void, skip_locked, now)
        except IntegrityError:
            # Another collector recorded one of these attempt numbers first (the plan lock
            # makes this all but impossible): its call stands for ours.
            if len(invoice_ids) > 1:
                claimed = Claimed()
                for one in invoice_ids:
                    part = await self.claim([one], actor, mode, void=void, skip_locked=skip_locked)
                    claimed.claims += part.claims
                    claimed.done += part.done
                    claimed.skipped += part.skipped
                return claimed
            async with self.db.transaction() as session:
                invoice = await repo.invoice_state(session, invoice_ids[0])
            assert invoice is not None
            return Claimed(done=[Collected(invoice, wait=Wait.IN_FLIGHT)])

    async def _claim(
        self,
        session: AsyncSession,
        invoice_ids: Sequence[str],
        actor: str,
        mode: Mode,
        void: bool,
        skip_locked: bool,
        now: datetime,
    ) -> Claimed:
        plans = await plan_repo.lock_plans_of(session, invoice_ids, skip_locked=skip_locked)
        # Read after the locks are held: what earlier holders committed is seen.
        found = await repo.invoices_with_attempts(session, list(plans))
        out = Claimed(skipped=[i for i in invoice_ids if i not in plans] if skip_locked else [])
        rows: list[dict[str, Any]] = []
        free: list[settle.Settlement] = []
        wall_now = _wall_now()
        for invoice_id, plan in plans.items():
            invoice, attempts = found[invoice_id]
            if invoice.status is not InvoiceStatus.PENDING:
                out.done.append(Collected(invoice, wait=Wait.SETTLED))
                continue
            if invoice.total == 0 and not void:
                # Nothing to charge (a purchase on the last day rounds to 0): paid, no call.
                free.append(settle.Settlement(plan, invoice, AttemptOutcome.SUCCEEDED))
                continue
            decision = next_send(
                attempts,
                invoice_id=invoice.id,
                # Only a new key charges the method of now (else the same request is resent).
                payment_method=(
                    invoice.payment_method
                    if invoice.kind is InvoiceKind.PURCHASE  # what the admin confirmed
                    else invoice.account_payment_method
                ),
                mode=mode,
                now=now,
                wall_now=wall_now,
                lease=self.lease,
                retry=self.retry,
                void=void,
            )
            if isinstance(decision, Wait):
                out.done.append(Collected(invoice, wait=decision))
                continue
            rows.append(_attempt_row(invoice, decision, actor, now))
            out.claims.append(Claim(invoice, decision))
        await repo.add_attempts(session, rows)
        for settled in await settle.apply(session, free, now=now, actor=actor):
            out.done.append(Collected(settled, outcome=AttemptOutcome.SUCCEEDED))
        return out

    async def open(
        self,
        session: AsyncSession,
        invoice: Mapping[str, Any],
        line: Mapping[str, Any],
        actor: str,
        now: datetime,
    ) -> Opened | None:
        """Open a new pending invoice for collection, in the caller's transaction (its plan
        locked): the invoice (``invoice``: its column values), its one line, the plan's note
        that it waits for it, and its first attempt, written together, so that no collector
        ever sees the pending invoice without its claim. ``finish`` it after the commit.

        None, and nothing written, when the invoice's request already has one (a retry: the
        caller finds that one). An invoice of 0 is opened without an attempt: ``finish``
        settles it without a call.
        """
        state = InvoiceState(
            id=invoice["id"],
            account_id=invoice["account_id"],
            kind=invoice["kind"],
            status=invoice["status"],
            total=invoice["total"],
            currency=invoice["currency"],
            seats=invoice["seats"],
            period_start=invoice["period_start"],
            period_end=invoice["period_end"],
            billing_cycle=invoice["billing_cycle"],
            payment_method=invoice["payment_method"],
            account_payment_method=invoice["payment_method"],
            failure_reason=None,
            created_at=invoice["created_at"],
            paid_at=None,
            charge_id=None,
        )
        claim = None
        if state.total != 0:
            decision = next_send(
                [],
                invoice_id=state.id,
                payment_method=state.payment_method,
                mode=Mode.REQUEST,
                now=now,
                wall_now=_wall_now(),
                lease=self.lease,
                retry=self.retry,
            )
            assert isinstance(decision, Send)  # a first attempt always sends
            claim = Claim(state, decision)
        attempt = None if claim is None else _attempt_row(state, claim.send, actor, now)
        if not await opening.add_pending(session, invoice, line, attempt):
            return None
        return Opened(state.id, claim)

    async def finish(self, opened: Opened, actor: str) -> Collected:
        """Collect an invoice opened (or found) by a request: the claimed call made and
        recorded, or, without a claim of its own, whatever the invoice needs now."""
        if opened.claim is not None:
            return await self.complete(opened.claim, actor)
        return await self.collect(opened.invoice_id, actor, Mode.REQUEST)

    # --- 2. call -----------------------------------------------------------------------

    async def send(self, claim: Claim) -> Answer:
        """Make the claimed call, outside any transaction; every failure is an answer."""
        invoice, send = claim.invoice, claim.send
        try:
            if send.operation is AttemptOperation.VOID:
                voided = await self.gateway.void(idempotency_key=send.key)
                CHARGES.labels("voided").inc()
                return Answer(
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
            return Answer(AttemptOutcome.UNAVAILABLE, reason=str(exc)[:200])
        except GatewayRejected as exc:
            CHARGES.labels("rejected").inc()
            log.error("payments service refused %s (key %s): %s", invoice.id, send.key, exc)
            return Answer(AttemptOutcome.REJECTED, reason=str(exc)[:200])
        if isinstance(result, ChargeSucceeded):
            CHARGES.labels("succeeded").inc()
            return Answer(AttemptOutcome.SUCCEEDED, charge_id=result.charge_id)
        CHARGES.labels("declined").inc()
        return Answer(AttemptOutcome.DECLINED, reason=result.reason[:200])

    # --- 3. record ---------------------------------------------------------------------

    async def record(self, answers: Sequence[tuple[Claim, Answer]], actor: str) -> list[Collected]:
        """Append the outcomes and settle, in one transaction with the plans locked (in
        account order, waiting: each outcome must be recorded by the one who claimed it).

        All or nothing: a batch that raises records none of its outcomes; the caller then
        records them one by one to isolate the one that cannot be recorded.
        """
        async with self.db.transaction() as session:
            now = await self.clock.now(session)
            ids = [claim.invoice.id for claim, _ in answers]
            plans = await plan_repo.lock_plans_of(session, ids, skip_locked=False)
            found = await repo.invoices_with_attempts(session, ids)
            await repo.add_outcomes(
                session,
                [
                    {
                        "invoice_id": claim.invoice.id,
                        "number": claim.send.number,
                        "outcome": answer.outcome,
                        "reason": answer.reason,
                        "charge_id": answer.charge_id,
                        "at": now,
                    }
                    for claim, answer in answers
                ],
            )
            items: list[settle.Settlement] = []
            for claim, answer in answers:
                invoice = found[claim.invoice.id][0]
                if invoice.status is InvoiceStatus.PENDING:
                    items.append(_settlement(plans[invoice.id], invoice, answer))
                elif answer.outcome is AttemptOutcome.SUCCEEDED:
                    # Only after a stale claim (a collector presumed dead that was not): the
                    # money arrived for an invoice closed meanwhile. Loud, for an operator.
                    log.error(
                        "charge %s succeeded for invoice %s that is already %s: refund it",
                        answer.charge_id,
                        invoice.id,
                        invoice.status.value,
                    )
            settled = {s.id: s for s in await settle.apply(session, items, now=now, actor=actor)}
            return [
                Collected(
                    settled.get(claim.invoice.id, found[claim.invoice.id][0]),
                    outcome=answer.outcome,
                    reason=answer.reason,
                )
                for claim, answer in answers
            ]


def _settlement(plan: SettlingPlan, invoice: InvoiceState, answer: Answer) -> settle.Settlement:
    return settle.Settlement(plan, invoice, answer.outcome, answer.reason, answer.charge_id)
