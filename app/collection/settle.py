"""What an attempt's outcome does to its invoice and plan, once (SPEC §6, R6, R9, R14).

Called with the plans locked and the invoices still pending, in the transaction that appends
the outcomes: each answer and its effect are recorded together or not at all. A batch of
renewals paid (the billing run's common case) is one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.periods import Period
from app.collection import repository as repo
from app.collection.repository import InvoiceState
from app.ledger import repository as ledger
from app.ledger.models import AttemptOutcome, InvoiceKind, InvoiceStatus
from app.plan import repository as plan_repo
from app.plan import transitions
from app.plan.repository import SettlingPlan
from app.seats import schedules


@dataclass(frozen=True, slots=True)
class Settlement:
    """One pending invoice, its locked plan, and the outcome to settle it by."""

    plan: SettlingPlan
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
    plans: dict[str, SettlingPlan] = {}
    settled: list[InvoiceState] = []
    for item in items:
        plan = plans.get(item.plan.account_id, item.plan)
        invoice, plan = await _effect(session, replace(item, plan=plan), now, actor)
        plans[plan.account_id] = plan
        settled.append(invoice)
    return settled


async def _effect(
    session: AsyncSession, item: Settlement, now: datetime, actor: str
) -> tuple[InvoiceState, SettlingPlan]:
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
    session: AsyncSession, plan: SettlingPlan, now: datetime, change: transitions.Change
) -> SettlingPlan:
    await plan_repo.write(session, plan.account_id, change, now)
    kept = {
        k: v for k, v in change.values.items() if k in ("status", "seats", "pending_invoice_id")
    }
    return replace(plan, **kept)


async def _purchase_paid(
    session: AsyncSession, plan: SettlingPlan, invoice: InvoiceState, now: datetime, actor: str
) -> SettlingPlan:
    before = plan.seats
    change = transitions.purchase_paid(
        plan.status,
        plan.pending_invoice_id,
        invoice.id,
        invoice.seats,
        Period(invoice.period_start, invoice.period_end),
        invoice.billing_cycle,
    )
    plan = await _change(session, plan, now, change)
    if plan.scheduled_seats is not None and plan.scheduled_for is not None:
        # R15: the admin wants more seats, not fewer: a purchase cancels a scheduled decrease.
        await schedules.cancel_scheduled_change(
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
    plan: SettlingPlan,
    invoice: InvoiceState,
    now: datetime,
    actor: str,
    event: str,
) -> SettlingPlan:
    change = transitions.close_purchase(plan.pending_invoice_id, invoice.id)
    plan = await _change(session, plan, now, change)
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
    session: AsyncSession, plan: SettlingPlan, invoice: InvoiceState, now: datetime, actor: str
) -> SettlingPlan:
    change = transitions.recover(plan.status)
    if change is None:
        return plan
    if await repo.has_pending_renewal(session, plan.account_id):
        return plan  # still owes an older or newer renewal
    plan = await _change(session, plan, now, change)
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
    plan: SettlingPlan,
    invoice: InvoiceState,
    reason: str,
    now: datetime,
    actor: str,
) -> SettlingPlan:
    change = transitions.go_past_due(plan.status)
    if change is None:
        return plan
    plan = await _change(session, plan, now, change)
    await ledger.add_event(
        session,
        account_id=invoice.account_id,
        type="plan.past_due",
        actor=actor,
        at=now,
        data={"invoice_id": invoice.id, "reason": reason},
    )
    return plan
