"""What an attempt's outcome does to its invoice and plan, once (SPEC §6, R6, R9, R14).

Called with the plans locked and the invoices still pending, in the transaction that appends
the outcomes: each answer and its effect are recorded together or not at all. A batch of
renewals paid (the billing run's common case) is one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.collection import repository as repo
from app.collection.repository import InvoiceState, PlanState
from app.ledger import repository as ledger
from app.ledger.models import AttemptOutcome, InvoiceKind, InvoiceStatus
from app.seats import repository as seats
from app.seats.status import PlanStatus


@dataclass(frozen=True, slots=True)
class Settlement:
    """One pending invoice, its locked plan, and the outcome to settle it by."""

    plan: PlanState
    invoice: InvoiceState
    outcome: AttemptOutcome
    reason: str | None = None
    charge_id: str | None = None


async def apply(
    session: AsyncSession, items: Sequence[Settlement], *, now: datetime, actor: str
) -> list[InvoiceState]:
    """Settle every item by its outcome; the invoices as they now stand, in order. An
    unknown outcome changes nothing. Two items of one plan see each other's effects."""
    paid = [i for i in items if i.outcome is AttemptOutcome.SUCCEEDED]
    await repo.mark_paid(
        session,
        [{"id": i.invoice.id, "paid_at": now, "charge_id": i.charge_id or None} for i in paid],
    )
    plans: dict[str, PlanState] = {}
    settled: list[InvoiceState] = []
    for item in items:
        plan = plans.get(item.plan.account_id, item.plan)
        invoice, plan = await _effect(session, replace(item, plan=plan), now, actor)
        plans[plan.account_id] = plan
        settled.append(invoice)
    return settled


async def _effect(
    session: AsyncSession, item: Settlement, now: datetime, actor: str
) -> tuple[InvoiceState, PlanState]:
    plan, invoice, outcome = item.plan, item.invoice, item.outcome
    if outcome is AttemptOutcome.SUCCEEDED:
        invoice = replace(
            invoice, status=InvoiceStatus.PAID, paid_at=now, charge_id=item.charge_id or None
        )
        if invoice.kind is InvoiceKind.PURCHASE:
            return invoice, await _purchase_paid(session, plan, invoice, now, actor)
        return invoice, await _renewal_paid(session, plan, invoice, now, actor)
    if outcome is AttemptOutcome.DECLINED:
        reason = item.reason or "declined"
        if invoice.kind is InvoiceKind.PURCHASE:
            invoice = await _close(session, invoice, InvoiceStatus.FAILED, reason)
            return invoice, await _purchase_closed(
                session, plan, invoice, now, actor, "purchase.declined"
            )
        # The renewal stays pending (it is still owed); its reason is the attempt's outcome.
        return invoice, await _renewal_declined(session, plan, invoice, reason, now, actor)
    if outcome is AttemptOutcome.VOIDED:
        invoice = await _close(session, invoice, InvoiceStatus.VOID, item.reason or "voided")
        return invoice, await _purchase_closed(
            session, plan, invoice, now, actor, "purchase.voided"
        )
    return invoice, plan


async def _close(
    session: AsyncSession, invoice: InvoiceState, status: InvoiceStatus, reason: str
) -> InvoiceState:
    await repo.close_invoice(session, invoice.id, status, reason)
    return replace(invoice, status=status, failure_reason=reason[:200])


async def _change(
    session: AsyncSession, plan: PlanState, now: datetime, values: dict[str, Any]
) -> PlanState:
    await repo.update_plan(session, plan.account_id, {**values, "updated_at": now})
    kept = {k: v for k, v in values.items() if k in ("status", "seats", "pending_invoice_id")}
    return replace(plan, **kept)


async def _purchase_paid(
    session: AsyncSession, plan: PlanState, invoice: InvoiceState, now: datetime, actor: str
) -> PlanState:
    before = plan.seats
    values: dict[str, Any] = {"seats": invoice.seats}
    if plan.pending_invoice_id == invoice.id:
        values |= {"pending_invoice_id": None, "pending_seats": None}
    if not plan.status.is_paid:
        # Out of a trial, an expired trial, a canceled plan or nothing: the purchase starts
        # the paid plan on the period (and cycle) it was priced over.
        values |= {
            "period_start": invoice.period_start,
            "period_end": invoice.period_end,
            "billing_cycle": invoice.billing_cycle,
            "status": PlanStatus.ACTIVE,
        }
    plan = await _change(session, plan, now, values)
    if plan.scheduled_seats is not None and plan.scheduled_for is not None:
        # R15: the admin wants more seats, not fewer: a purchase cancels a scheduled decrease.
        await seats.cancel_scheduled_change(
            session,
            invoice.account_id,
            invoice.seats,
            plan.scheduled_seats,
            plan.scheduled_for,
            now=now,
            actor=actor,
            reason="purchase",
        )
        plan = replace(plan, scheduled_seats=None, scheduled_for=None)
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
    return plan


async def _purchase_closed(
    session: AsyncSession,
    plan: PlanState,
    invoice: InvoiceState,
    now: datetime,
    actor: str,
    event: str,
) -> PlanState:
    values: dict[str, Any] = {}
    if plan.pending_invoice_id == invoice.id:
        values = {"pending_invoice_id": None, "pending_seats": None}
    plan = await _change(session, plan, now, values)
    await ledger.add_event(
        session,
        account_id=invoice.account_id,
        type=event,
        actor=actor,
        at=now,
        data={"invoice_id": invoice.id, "seats": invoice.seats, "reason": invoice.failure_reason},
    )
    return plan


async def _renewal_paid(
    session: AsyncSession, plan: PlanState, invoice: InvoiceState, now: datetime, actor: str
) -> PlanState:
    if plan.status is not PlanStatus.PAST_DUE:
        return plan
    if await repo.has_pending_renewal(session, plan.account_id):
        return plan  # still owes an older or newer renewal
    plan = await _change(session, plan, now, {"status": PlanStatus.ACTIVE})
    await ledger.add_event(
        session,
        account_id=invoice.account_id,
        type="plan.recovered",
        actor=actor,
        at=now,
        data={"invoice_id": invoice.id},
    )
    return plan


async def _renewal_declined(
    session: AsyncSession,
    plan: PlanState,
    invoice: InvoiceState,
    reason: str,
    now: datetime,
    actor: str,
) -> PlanState:
    if plan.status is not PlanStatus.ACTIVE:
        return plan
    plan = await _change(session, plan, now, {"status": PlanStatus.PAST_DUE})
    await ledger.add_event(
        session,
        account_id=invoice.account_id,
        type="plan.past_due",
        actor=actor,
        at=now,
        data={"invoice_id": invoice.id, "reason": reason},
    )
    return plan
