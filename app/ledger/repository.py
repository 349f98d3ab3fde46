"""SQL for the ledger and the audit log. Rows are only ever added (R11)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from fastapi.encoders import jsonable_encoder
from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from app.ledger.models import ChargeAttempt, Event, Invoice, InvoiceKind, InvoiceStatus
from app.pagination import keyset
from app.sqltypes import UTCDateTime


async def add_event(
    session: AsyncSession,
    *,
    account_id: str,
    type: str,
    actor: str,
    at: datetime,
    data: dict[str, Any],
) -> Event:
    event = Event(
        id=new_id("evt"),
        account_id=account_id,
        type=type,
        actor=actor,
        at=at,
        data=jsonable_encoder(data),  # dates become ISO strings, as the API shows them
    )
    session.add(event)
    return event


async def get_invoice(
    session: AsyncSession, invoice_id: str, *, for_update: bool = False
) -> Invoice | None:
    stmt = select(Invoice).where(Invoice.id == invoice_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def invoice_for_request(session: AsyncSession, request_key: str) -> Invoice | None:
    return await session.scalar(select(Invoice).where(Invoice.request_key == request_key))


async def list_invoices(
    session: AsyncSession,
    account_id: str,
    cursor: str | None,
    limit: int,
    status: str | None = None,
) -> list[Invoice]:
    """A page of the account's invoices, newest first; only those in ``status`` if given."""
    query = select(Invoice).where(Invoice.account_id == account_id)
    if status is not None:
        # Compared as text: a status the API names but no row holds yet matches nothing,
        # where binding it through the enum type would fail.
        query = query.where(type_coerce(Invoice.status, String) == status)
    stmt = keyset(
        query,
        Invoice.created_at,
        Invoice.id,
        cursor,
        limit,
    )
    return list((await session.scalars(stmt)).all())


async def list_events(
    session: AsyncSession, account_id: str, cursor: str | None, limit: int
) -> list[Event]:
    stmt = keyset(
        select(Event).where(Event.account_id == account_id), Event.at, Event.id, cursor, limit
    )
    return list((await session.scalars(stmt)).all())


async def pending_invoices(session: AsyncSession, limit: int = 100) -> list[Invoice]:
    stmt = (
        select(Invoice)
        .where(Invoice.status == InvoiceStatus.PENDING)
        .order_by(Invoice.created_at)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def has_invoices(session: AsyncSession, account_id: str) -> bool:
    found = await session.scalar(
        select(Invoice.id).where(Invoice.account_id == account_id).limit(1)
    )
    return found is not None


async def attempts(session: AsyncSession, invoice_id: str) -> list[ChargeAttempt]:
    stmt = (
        select(ChargeAttempt)
        .where(ChargeAttempt.invoice_id == invoice_id)
        .order_by(ChargeAttempt.number)
    )
    return list((await session.scalars(stmt)).all())


class OutstandingRenewal(NamedTuple):
    id: str
    total: int
    failure_reason: str | None
    due_since: datetime


async def oldest_outstanding_renewal(
    session: AsyncSession, account_id: str
) -> OutstandingRenewal | None:
    """The account's oldest unpaid (pending) renewal, with its last decline's reason and
    the time of its first decline (its creation if none was declined yet)."""
    declined = (ChargeAttempt.invoice_id == Invoice.id) & (ChargeAttempt.outcome == "declined")
    first_decline = select(func.min(ChargeAttempt.at)).where(declined).scalar_subquery()
    last_reason = (
        select(ChargeAttempt.reason)
        .where(declined)
        .order_by(ChargeAttempt.number.desc())
        .limit(1)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(
                Invoice.id,
                Invoice.total,
                # A declined renewal stays pending: its reasons are on its charge attempts.
                func.coalesce(last_reason, Invoice.failure_reason),
                Invoice.created_at,
                type_coerce(first_decline, UTCDateTime()),
            )
            .where(
                Invoice.account_id == account_id,
                Invoice.kind == InvoiceKind.RENEWAL,
                Invoice.status == InvoiceStatus.PENDING,
            )
            .order_by(Invoice.created_at, Invoice.id)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    invoice_id, total, reason, created_at, first_declined_at = row
    return OutstandingRenewal(invoice_id, total, reason, first_declined_at or created_at)
