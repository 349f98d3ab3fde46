"""Purchases: money that cannot go wrong (SPEC R6, §6).

The order is what makes it safe, and it must not change:

1. In one transaction, with the plan locked: check the rules, price the purchase and record a
   ``pending`` invoice (and mark the plan as having a purchase pending). Commit.
2. Charge the gateway, outside any transaction, with the invoice id as the idempotency key.
3. In one transaction, with the plan locked: mark the invoice ``paid`` and raise the seats, or
   mark it ``failed`` and change nothing else.

A crash or a timeout between 1 and 3 leaves a pending invoice that a retry with the same
``Idempotency-Key``, or the billing run, completes with the same gateway key: the gateway
charges at most once per key, and step 3 applies at most once because it only acts on a
pending invoice. Seats are never raised without a paid invoice.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass

from fastapi.encoders import jsonable_encoder
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Caller
from app.billing.periods import BillingCycle
from app.billing.pricing import price_change
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.errors import (
    AppError,
    IdempotencyKeyRequired,
    PaymentDeclined,
    PaymentPending,
    PaymentUnavailable,
    QuoteNotFound,
    QuoteStale,
)
from app.idempotency import IdempotencyStore, IdempotentRequest, StoredResponse
from app.ids import new_id
from app.ledger import repository as ledger
from app.ledger.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from app.ledger.schemas import InvoiceOut
from app.observability import CHARGES
from app.payments.gateway import (
    ChargeDeclined,
    ChargeResult,
    ChargeSucceeded,
    Gateway,
    GatewayRejected,
    GatewayUnavailable,
)
from app.seats import repository, rules
from app.seats.models import PlanStatus
from app.seats.schemas import PurchaseIn, PurchaseOut
from app.seats.service import load, plan_state, summarize, touch

log = logging.getLogger(__name__)

FREE = ChargeSucceeded(charge_id="")  # a zero-amount invoice is paid without a charge


@dataclass(frozen=True, slots=True)
class Payments:
    """What a purchase needs besides the request."""

    db: Database
    gateway: Gateway
    idempotency: IdempotencyStore
    clock: Clock
    settings: Settings


async def purchase(
    deps: Payments, caller: Caller, req: IdempotentRequest | None, body: PurchaseIn
) -> StoredResponse:
    """Raise the plan to ``body.seats``, charging the prorated price now (R6)."""
    caller.require_primary_admin()
    if req is None:
        raise IdempotencyKeyRequired("A purchase needs an Idempotency-Key header.")
    stored = await deps.idempotency.claim(req)
    if stored is not None:
        return stored
    try:
        async with deps.db.transaction() as session:
            invoice = await _prepare(session, deps, caller, req, body)
        if invoice.status is InvoiceStatus.PENDING:
            outcome = await charge(deps.gateway, invoice)
            crash_point(deps.settings, "after_charge")
            async with deps.db.transaction() as session:
                invoice = await settle(session, invoice.id, outcome, deps.clock, caller.actor)
                reply = await _reply(session, deps.settings, caller.account_id, invoice.id)
                if reply.status < 400:
                    await deps.idempotency.store(session, req, reply.status, reply.body)
        else:
            async with deps.db.transaction() as session:
                reply = await _reply(session, deps.settings, caller.account_id, invoice.id)
        if invoice.status is InvoiceStatus.FAILED:
            raise declined(invoice)
        return reply
    except AppError as exc:
        await deps.idempotency.finish_with_error(req, exc)
        raise
    except BaseException:
        await deps.idempotency.release_quietly(req)
        raise


async def _prepare(
    session: AsyncSession,
    deps: Payments,
    caller: Caller,
    req: IdempotentRequest,
    body: PurchaseIn,
) -> Invoice:
    """Step 1: the pending invoice of this request, made now or found from an earlier try."""
    now = await deps.clock.now(session)
    plan, account = await load(session, caller.account_id, lock=True)
    earlier = await ledger.invoice_for_request(session, req.scope_hash)
    if earlier is not None:
        # A retry of a purchase whose charge timed out or whose process died: carry on with
        # the same invoice, hence the same gateway key.
        return earlier
    state = plan_state(plan)
    rules.check_purchase(state, body.seats)
    cycle = BillingCycle(account.billing_cycle)
    today = now.date()
    period = rules.pricing_period(state, anchor=account.billing_anchor, cycle=cycle, today=today)
    change = price_change(
        current_seats=plan.seats,
        seats=body.seats,
        paid_seats=state.paid_seats,
        unit_price=deps.settings.price_monthly,
        cycle=cycle,
        period=period,
        today=today,
    )
    if body.quote_id is not None:
        quote = await repository.get_quote(session, caller.account_id, body.quote_id)
        if quote is None:
            raise QuoteNotFound(f"No quote {body.quote_id!r} for this account.")
        if now >= quote.expires_at or (
            quote.seats,
            quote.current_seats,
            quote.unit_price,
            quote.currency,
            quote.period_start,
            quote.period_end,
            quote.due_now,
        ) != (
            body.seats,
            plan.seats,
            change.unit_price,
            account.currency,
            period.start,
            period.end,
            change.due_now,
        ):
            raise QuoteStale("The quote expired or no longer matches: ask for a new quote.")
    invoice = Invoice(
        id=new_id("inv"),
        account_id=caller.account_id,
        kind=InvoiceKind.PURCHASE,
        status=InvoiceStatus.PENDING,
        currency=account.currency,
        total=change.due_now,
        seats=body.seats,
        period_start=period.start,
        period_end=period.end,
        payment_method=account.payment_method,
        request_key=req.scope_hash,
        created_by=caller.actor,
        created_at=now,
    )
    days = change.proration
    invoice.lines = [
        InvoiceLine(
            position=0,
            description=(
                f"{change.charged_seats} Conversations seat(s), {cycle.value}, prorated "
                f"{days.days_remaining}/{days.days_in_period} days to {period.end}"
            ),
            quantity=change.charged_seats,
            unit_price=change.unit_price * cycle.months,
            amount=change.due_now,
            period_start=today,
            period_end=period.end,
        )
    ]
    session.add(invoice)
    plan.pending_invoice_id = invoice.id
    plan.pending_seats = body.seats
    touch(plan, now)
    return invoice


async def charge(
    gateway: Gateway,
    invoice: Invoice,
    *,
    key: str | None = None,
    payment_method: str | None = None,
) -> ChargeResult:
    """Step 2: charge ``invoice`` (never inside a transaction: the gateway may be slow)."""
    if invoice.total == 0:
        return FREE
    try:
        result = await gateway.charge(
            payment_method=payment_method or invoice.payment_method,
            amount=invoice.total,
            currency=invoice.currency,
            idempotency_key=key or invoice.id,
            description=f"Conversations seats, invoice {invoice.id}",
        )
    except GatewayUnavailable as exc:
        CHARGES.labels("unavailable").inc()
        log.warning("gateway unavailable for %s: %s", invoice.id, exc)
        raise PaymentPending(
            "The payment service did not answer; the purchase completes on a retry with "
            "the same Idempotency-Key, or automatically.",
            invoice_id=invoice.id,
        ) from exc
    except GatewayRejected as exc:
        # SPEC §6: our fault (credentials, URL), not a decline: nothing charged, stays pending.
        CHARGES.labels("rejected").inc()
        log.error("payments service refused the charge of %s: %s", invoice.id, exc)
        raise PaymentUnavailable(
            "The payment service refused the request; nothing was charged and the purchase "
            "stays pending until it is fixed.",
            invoice_id=invoice.id,
        ) from exc
    CHARGES.labels("succeeded" if isinstance(result, ChargeSucceeded) else "declined").inc()
    return result


async def settle(
    session: AsyncSession, invoice_id: str, outcome: ChargeResult, clock: Clock, actor: str
) -> Invoice:
    """Step 3: apply a charge's outcome to a pending purchase, once."""
    now = await clock.now(session)
    invoice = await ledger.get_invoice(session, invoice_id)
    assert invoice is not None
    plan, _ = await load(session, invoice.account_id, lock=True)
    await session.refresh(invoice)  # read it again now that we hold the plan's lock
    if invoice.status is not InvoiceStatus.PENDING:
        return invoice  # settled meanwhile by a retry or the billing run
    if plan.pending_invoice_id == invoice.id:
        plan.pending_invoice_id = None
        plan.pending_seats = None
    if isinstance(outcome, ChargeDeclined):
        invoice.status = InvoiceStatus.FAILED
        invoice.failure_reason = outcome.reason[:200]
        touch(plan, now)
        await ledger.add_event(
            session,
            account_id=invoice.account_id,
            type="purchase.declined",
            actor=actor,
            at=now,
            data={"invoice_id": invoice.id, "seats": invoice.seats, "reason": outcome.reason},
        )
        return invoice
    invoice.status = InvoiceStatus.PAID
    invoice.paid_at = now
    invoice.charge_id = outcome.charge_id or None
    before = plan.seats
    if not plan.status.is_paid:
        plan.period_start, plan.period_end = invoice.period_start, invoice.period_end
    plan.status = PlanStatus.ACTIVE
    plan.seats = invoice.seats
    touch(plan, now)
    await ledger.add_event(
        session,
        account_id=invoice.account_id,
        type="seats.purchased",
        actor=actor,
        at=now,
        data={
            "seats_before": before,
            "seats_after": invoice.seats,
            "invoice_id": invoice.id,
            "amount": invoice.total,
        },
    )
    return invoice


async def _reply(
    session: AsyncSession, settings: Settings, account_id: str, invoice_id: str
) -> StoredResponse:
    plan, account = await load(session, account_id, lock=False)
    invoice = await ledger.get_invoice(session, invoice_id)
    assert invoice is not None
    body = PurchaseOut(
        summary=summarize(plan, account, settings), invoice=InvoiceOut.model_validate(invoice)
    )
    return StoredResponse(201, jsonable_encoder(body))


def declined(invoice: Invoice) -> PaymentDeclined:
    return PaymentDeclined(
        f"The payment method was declined ({invoice.failure_reason}); nothing changed.",
        invoice_id=invoice.id,
        reason=invoice.failure_reason,
    )


def crash_point(settings: Settings, name: str) -> None:
    """Fault injection for the crash tests: die here, as a power cut would."""
    if settings.fault_point == name:
        log.critical("fault point %s reached: killing the process", name)
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no rollback, no response
