"""SQL for the ledger and the audit log. Rows are only ever added (R11); only an account's
invoice counter (its last invoice number) is raised in place."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, cast

from fastapi.encoders import jsonable_encoder
from sqlalchemy import Table, func, select, tuple_, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from app.ids import new_id
from app.ledger.invoices import NewInvoice, Number, invoice_number
from app.ledger.models import (
    ChargeAttempt,
    ChargeOutcome,
    Event,
    Invoice,
    InvoiceCounter,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
)
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


async def has_event_after(
    session: AsyncSession, account_id: str, type: str, after: datetime
) -> bool:
    """Whether the account has an event of ``type`` later than ``after``."""
    found = await session.scalar(
        select(Event.id)
        .where(Event.account_id == account_id, Event.at > after, Event.type == type)
        .limit(1)
    )
    return found is not None


_COUNTER = cast(Table, InvoiceCounter.__table__)


async def take_number(session: AsyncSession, account_id: str, prefix: str) -> Number:
    """The account's next invoice number, taken in the caller's transaction (the one that
    writes the invoice): the counter's row stays locked until it ends, so a concurrent
    invoice of the account waits for it, and a rollback gives the number back (gapless)."""
    dialect = (await session.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(_COUNTER)
        .values(account_id=account_id, last=1)
        .on_conflict_do_update(
            index_elements=[_COUNTER.c.account_id], set_={"last": _COUNTER.c.last + 1}
        )
        .returning(_COUNTER.c.last)
    )
    sequence = (await session.execute(stmt)).scalar_one()
    return Number(sequence, invoice_number(prefix, account_id, sequence))


async def give_back_number(session: AsyncSession, account_id: str, number: Number) -> None:
    """Undo ``take_number`` when its invoice was not written after all (a retry found its
    earlier one): this transaction still holds the counter's row, so none was taken since."""
    await session.execute(
        update(_COUNTER)
        .where(_COUNTER.c.account_id == account_id, _COUNTER.c.last == number.sequence)
        .values(last=_COUNTER.c.last - 1)
    )


def add_invoice(session: AsyncSession, new: NewInvoice) -> Invoice:
    """Add a built invoice and its lines to the session (flushed with the caller's batch)."""
    invoice = Invoice(**new.invoice)
    invoice.lines = [InvoiceLine(**line) for line in new.lines]
    session.add(invoice)
    return invoice


async def get_invoice(
    session: AsyncSession, invoice_id: str, *, for_update: bool = False, lines: bool = True
) -> Invoice | None:
    """One invoice; ``lines=False`` skips loading its lines (the collection engine needs none)."""
    stmt = select(Invoice).where(Invoice.id == invoice_id)
    if not lines:
        stmt = stmt.options(raiseload(Invoice.lines))
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
        query = query.where(Invoice.status == InvoiceStatus(status))
    stmt = keyset(
        query,
        Invoice.created_at,
        Invoice.id,
        cursor,
        limit,
    )
    return list((await session.scalars(stmt)).all())


async def invoices_between(
    session: AsyncSession,
    account_id: str,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Invoice]:
    """The account's invoices made in ``[start, end)``, oldest first, from after ``after``
    (the last one of the previous batch): the CSV export reads them a batch at a time."""
    stmt = select(Invoice).where(Invoice.account_id == account_id)
    if start is not None:
        stmt = stmt.where(Invoice.created_at >= start)
    if end is not None:
        stmt = stmt.where(Invoice.created_at < end)
    if after is not None:
        stmt = stmt.where(tuple_(Invoice.created_at, Invoice.id) > tuple_(*after))
    stmt = stmt.order_by(Invoice.created_at, Invoice.id).limit(limit)
    return list((await session.scalars(stmt)).all())


async def list_events(
    session: AsyncSession, account_id: str, cursor: str | None, limit: int
) -> list[Event]:
    stmt = keyset(
        select(Event).where(Event.account_id == account_id), Event.at, Event.id, cursor, limit
    )
    return list((await session.scalars(stmt)).all())


async def has_invoices(session: AsyncSession, account_id: str) -> bool:
    found = await session.scalar(
        select(Invoice.id).where(Invoice.account_id == account_id).limit(1)
    )
    return found is not None


async def attempts(
    session: AsyncSession, invoice_id: str
) -> list[tuple[ChargeAttempt, ChargeOutcome | None]]:
    """The invoice's gateway attempts in order, each with its outcome (None: none recorded)."""
    stmt = (
        select(ChargeAttempt, ChargeOutcome)
        .outerjoin(
            ChargeOutcome,
            (ChargeOutcome.invoice_id == ChargeAttempt.invoice_id)
            & (ChargeOutcome.number == ChargeAttempt.number),
        )
        .where(ChargeAttempt.invoice_id == invoice_id)
        .order_by(ChargeAttempt.number)
    )
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def last_declines(session: AsyncSession, invoice_ids: list[str]) -> dict[str, ChargeOutcome]:
    """The latest decline of each of these invoices (the reason shown as ``failure_reason``)."""
    if not invoice_ids:
        return {}
    stmt = (
        select(ChargeOutcome)
        .where(ChargeOutcome.invoice_id.in_(invoice_ids), ChargeOutcome.outcome == "declined")
        .order_by(ChargeOutcome.invoice_id, ChargeOutcome.number)
    )
    return {o.invoice_id: o for o in (await session.scalars(stmt)).all()}


async def pending_renewals(session: AsyncSession, account_id: str) -> list[Invoice]:
    """The account's outstanding renewals, oldest first."""
    stmt = (
        select(Invoice)
        .where(
            Invoice.account_id == account_id,
            Invoice.kind == InvoiceKind.RENEWAL,
            Invoice.status == InvoiceStatus.PENDING,
        )
        .order_by(Invoice.created_at, Invoice.id)
    )
    return list((await session.scalars(stmt)).all())


async def invoice_account(session: AsyncSession, invoice_id: str) -> str | None:
    """The account an invoice belongs to (read before taking the account's plan lock)."""
    return await session.scalar(select(Invoice.account_id).where(Invoice.id == invoice_id))


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
    declined = (ChargeOutcome.invoice_id == Invoice.id) & (ChargeOutcome.outcome == "declined")
    first_decline = select(func.min(ChargeOutcome.at)).where(declined).scalar_subquery()
    last_reason = (
        select(ChargeOutcome.reason)
        .where(declined)
        .order_by(ChargeOutcome.number.desc())
        .limit(1)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(
                Invoice.id,
                Invoice.total,
                # A declined renewal stays pending: its reasons are on its attempts' outcomes.
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
