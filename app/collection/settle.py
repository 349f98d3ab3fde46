"""What an attempt's outcome does to its invoice and plan, once (SPEC §6, R6, R9, R14).

Called with the plan locked and the invoice still pending, in the transaction that appends
the outcome: the answer and its effect are recorded together or not at all.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger import repository as ledger
from app.ledger.models import AttemptOutcome, Invoice, InvoiceKind, InvoiceStatus
from app.seats.models import Plan
from app.seats.service import touch
from app.seats.status import PlanStatus


async def apply(
    session: AsyncSession,
    plan: Plan,
    invoice: Invoice,
    outcome: AttemptOutcome,
    *,
    reason: str | None,
    charge_id: str | None,
    now: datetime,
    actor: str,
) -> None:
    """Settle ``invoice`` by ``outcome``; an unknown outcome changes nothing."""
    if outcome is AttemptOutcome.SUCCEEDED:
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = now
        invoice.charge_id = charge_id or None
        await session.flush()
        if invoice.kind is InvoiceKind.PURCHASE:
            await _purchase_paid(session, plan, invoice, now, actor)
        else:
            await _renewal_paid(session, plan, invoice, now, actor)
    elif outcome is AttemptOutcome.DECLINED:
        if invoice.kind is InvoiceKind.PURCHASE:
            invoice.status = InvoiceStatus.FAILED
            invoice.failure_reason = (reason or "declined")[:200]
            await _purchase_closed(session, plan, invoice, now, actor, "purchase.declined")
        else:
            await _renewal_declined(session, plan, invoice, reason or "declined", now, actor)
    elif outcome is AttemptOutcome.VOIDED:
        invoice.status = InvoiceStatus.VOID
        invoice.failure_reason = (reason or "voided")[:200]
        await _purchase_closed(session, plan, invoice, now, actor, "purchase.voided")


async def _purchase_paid(
    session: AsyncSession, plan: Plan, invoice: Invoice, now: datetime, actor: str
) -> None:
    before = plan.seats
    if plan.pending_invoice_id == invoice.id:
        plan.pending_invoice_id = None
        plan.pending_seats = None
    if not plan.status.is_paid:
        # Out of a trial, an expired trial, a canceled plan or nothing: the purchase starts
        # the paid plan on the period (and cycle) it was priced over.
        plan.period_start, plan.period_end = invoice.period_start, invoice.period_end
        plan.billing_cycle = invoice.billing_cycle
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


async def _purchase_closed(
    session: AsyncSession, plan: Plan, invoice: Invoice, now: datetime, actor: str, event: str
) -> None:
    if plan.pending_invoice_id == invoice.id:
        plan.pending_invoice_id = None
        plan.pending_seats = None
    touch(plan, now)
    await ledger.add_event(
        session,
        account_id=invoice.account_id,
        type=event,
        actor=actor,
        at=now,
        data={"invoice_id": invoice.id, "seats": invoice.seats, "reason": invoice.failure_reason},
    )


async def _renewal_paid(
    session: AsyncSession, plan: Plan, invoice: Invoice, now: datetime, actor: str
) -> None:
    if plan.status is not PlanStatus.PAST_DUE:
        return
    if await ledger.pending_renewals(session, plan.account_id):
        return  # still owes an older or newer renewal
    plan.status = PlanStatus.ACTIVE
    touch(plan, now)
    await ledger.add_event(
        session,
        account_id=invoice.account_id,
        type="plan.recovered",
        actor=actor,
        at=now,
        data={"invoice_id": invoice.id},
    )


async def _renewal_declined(
    session: AsyncSession, plan: Plan, invoice: Invoice, reason: str, now: datetime, actor: str
) -> None:
    # The invoice stays pending (it is still owed); its reason is the attempt's outcome.
    if plan.status is not PlanStatus.ACTIVE:
        return
    plan.status = PlanStatus.PAST_DUE
    touch(plan, now)
    await ledger.add_event(
        session,
        account_id=invoice.account_id,
        type="plan.past_due",
        actor=actor,
        at=now,
        data={"invoice_id": invoice.id, "reason": reason},
    )
