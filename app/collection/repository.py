"""SQL of the collection engine: claims, outcomes and settlement, as Core statements (the
plans it locks and changes go through ``app.plan.repository``).

The engine runs these for every charge of a billing run, so none goes through the ORM's unit
of work or identity map, and each works on a batch of invoices as readily as on one: a claim
of N invoices is the same four statements as a claim of one. Events still go through
``app.ledger.repository.add_event``: the webhook outbox hooks the ORM flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.periods import BillingCycle
from app.collection.policy import Sent
from app.directory.models import Account
from app.ledger.models import (
    ChargeAttempt,
    ChargeOutcome,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
)

# The mapped classes' tables: Core statements on them skip the ORM's per-row bookkeeping.
_invoice = cast(Table, Invoice.__table__)
_attempt = cast(Table, ChargeAttempt.__table__)
_outcome = cast(Table, ChargeOutcome.__table__)
_account = cast(Table, Account.__table__)


@dataclass(frozen=True, slots=True)
class InvoiceState:
    """An invoice as the engine reads it, fresh under its plan's lock."""

    id: str
    account_id: str
    kind: InvoiceKind
    status: InvoiceStatus
    total: int
    currency: str
    seats: int
    period_start: date
    period_end: date
    billing_cycle: BillingCycle | None
    payment_method: str  # the one the invoice was made with
    account_payment_method: str  # the account's of now: what a new key charges
    failure_reason: str | None
    created_at: datetime
    paid_at: datetime | None
    charge_id: str | None


async def invoices_with_attempts(
    session: AsyncSession, invoice_ids: Sequence[str]
) -> dict[str, tuple[InvoiceState, list[Sent]]]:
    """The invoices (read fresh: call it with their plans locked) with their attempts in
    order, as the policy reads them, in one statement."""
    if not invoice_ids:
        return {}
    i, a, o, acct = _invoice, _attempt, _outcome, _account
    stmt = (
        select(
            i.c.id,
            i.c.account_id,
            i.c.kind,
            i.c.status,
            i.c.total,
            i.c.currency,
            i.c.seats,
            i.c.period_start,
            i.c.period_end,
            i.c.billing_cycle,
            i.c.payment_method,
            acct.c.payment_method,
            i.c.failure_reason,
            i.c.created_at,
            i.c.paid_at,
            i.c.charge_id,
            a.c.number,
            a.c.operation,
            a.c.gateway_key,
            a.c.payment_method,
            a.c.at,
            a.c.sent_at,
            o.c.outcome,
        )
        .join(acct, acct.c.id == i.c.account_id)
        .outerjoin(a, a.c.invoice_id == i.c.id)
        .outerjoin(o, and_(o.c.invoice_id == a.c.invoice_id, o.c.number == a.c.number))
        .where(i.c.id.in_(list(invoice_ids)))
        .order_by(i.c.id, a.c.number)
    )
    found: dict[str, tuple[InvoiceState, list[Sent]]] = {}
    for row in (await session.execute(stmt)).all():
        entry = found.get(row[0])
        if entry is None:
            entry = found[row[0]] = (InvoiceState(*row[:16]), [])
        if row[16] is not None:
            entry[1].append(Sent(*row[16:]))
    return found


async def invoice_state(session: AsyncSession, invoice_id: str) -> InvoiceState | None:
    """One invoice as the engine reads it (no attempts)."""
    found = await invoices_with_attempts(session, [invoice_id])
    entry = found.get(invoice_id)
    return None if entry is None else entry[0]


async def invoice_account(session: AsyncSession, invoice_id: str) -> str | None:
    """The account of an invoice (immutable: read before its plan is locked)."""
    return await session.scalar(select(_invoice.c.account_id).where(_invoice.c.id == invoice_id))


async def add_attempts(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Record attempts, one multi-row insert; the (invoice, number) key refuses a second
    collector's attempt of the same number."""
    if rows:
        await session.execute(insert(_attempt), list(rows))


async def add_outcomes(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append outcomes, one multi-row insert."""
    if rows:
        await session.execute(insert(_outcome), list(rows))


async def mark_paid(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Pending invoices paid: ``[{"id", "paid_at", "charge_id"}]`` (executemany)."""
    if not rows:
        return
    stmt = (
        update(_invoice)
        .where(_invoice.c.id == bindparam("b_id"), _invoice.c.status == InvoiceStatus.PENDING)
        .values(status=InvoiceStatus.PAID, paid_at=bindparam("b_at"), charge_id=bindparam("b_cid"))
    )
    params = [{"b_id": r["id"], "b_at": r["paid_at"], "b_cid": r["charge_id"]} for r in rows]
    await session.execute(stmt, params)


async def close_invoice(
    session: AsyncSession, invoice_id: str, status: InvoiceStatus, reason: str
) -> None:
    """A pending invoice failed, voided or uncollectible, with its reason."""
    await session.execute(
        update(_invoice)
        .where(_invoice.c.id == invoice_id, _invoice.c.status == InvoiceStatus.PENDING)
        .values(status=status, failure_reason=reason[:200])
    )


async def has_pending_renewal(session: AsyncSession, account_id: str) -> bool:
    """Whether the account still owes a renewal."""
    found = await session.scalar(
        select(_invoice.c.id)
        .where(
            _invoice.c.account_id == account_id,
            _invoice.c.kind == InvoiceKind.RENEWAL,
            _invoice.c.status == InvoiceStatus.PENDING,
        )
        .limit(1)
    )
    return found is not None


async def pending_invoice_ids(
    session: AsyncSession, kind: InvoiceKind, after: str, limit: int
) -> list[tuple[str, datetime]]:
    """A keyset page of the pending invoices of ``kind``: (id, created_at)."""
    rows = await session.execute(
        select(_invoice.c.id, _invoice.c.created_at)
        .where(
            _invoice.c.status == InvoiceStatus.PENDING,
            _invoice.c.kind == kind,
            _invoice.c.id > after,
        )
        .order_by(_invoice.c.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows.all()]
