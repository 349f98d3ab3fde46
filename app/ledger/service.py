"""Reading the ledger and the audit log (R11). No payment logic: that is ``app.collection``."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from typing import Any

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Caller
from app.billing.money import major_units
from app.config import InvoiceIssuer
from app.db import Database
from app.errors import InvoiceNotFound, ValidationFailed
from app.ledger import document, repository
from app.ledger.models import Invoice, InvoiceLine, InvoiceStatus
from app.ledger.schemas import EventOut, InvoiceOut
from app.pagination import next_cursor


async def _shown(session: AsyncSession, invoices: list[Invoice]) -> list[InvoiceOut]:
    """Invoices as the API shows them: an outstanding renewal's ``failure_reason`` is its last
    decline (the append-only row keeps none until it is closed)."""
    declines = await repository.last_declines(
        session, [i.id for i in invoices if i.status is InvoiceStatus.PENDING]
    )
    shown = []
    for invoice in invoices:
        out = InvoiceOut.model_validate(invoice)
        if out.failure_reason is None and invoice.id in declines:
            out.failure_reason = declines[invoice.id].reason
        shown.append(out)
    return shown


async def list_invoices(
    session: AsyncSession, caller: Caller, cursor: str | None, limit: int, status: str | None = None
) -> tuple[list[InvoiceOut], str | None]:
    """The account's invoices, newest first. Admins and services."""
    caller.require_admin_or_service()
    rows = await repository.list_invoices(session, caller.account_id, cursor, limit, status)
    rows, cursor_out = next_cursor(rows, limit, lambda i: (i.created_at, i.id))
    return await _shown(session, rows), cursor_out


async def get_invoice(session: AsyncSession, caller: Caller, invoice_id: str) -> InvoiceOut:
    """One invoice of the account. Admins and services."""
    caller.require_admin_or_service()
    invoice = await repository.get_invoice(session, invoice_id)
    if invoice is None or invoice.account_id != caller.account_id:
        raise InvoiceNotFound(f"No invoice {invoice_id!r} in this account.")
    [out] = await _shown(session, [invoice])
    return out


async def list_events(
    session: AsyncSession, caller: Caller, cursor: str | None, limit: int
) -> tuple[list[EventOut], str | None]:
    caller.require_admin_or_service()
    rows = await repository.list_events(session, caller.account_id, cursor, limit)
    rows, cursor_out = next_cursor(rows, limit, lambda e: (e.at, e.id))
    return [EventOut.model_validate(e) for e in rows], cursor_out


# Renders at once per process: each holds the parsed fonts and one document (a few MB), and
# one takes a fraction of a second of CPU, on a worker thread (never the event loop's).
_RENDERS = threading.BoundedSemaphore(2)


def _render(*args: Any) -> bytes:
    with _RENDERS:
        return document.render(*args)


async def invoice_pdf(
    invoice: InvoiceOut, account_id: str, account_name: str, issuer: InvoiceIssuer, now: datetime
) -> bytes:
    """The invoice as a PDF (SPEC §10); ``now`` only dates the file."""
    return await anyio.to_thread.run_sync(_render, invoice, account_id, account_name, issuer, now)


# A batch of the CSV export: one read each, so no transaction stays open while it streams.
CSV_BATCH = 200
CSV_COLUMNS = (
    "invoice_number",
    "invoice_id",
    "kind",
    "status",
    "created_at",
    "paid_at",
    "charge_id",
    "failure_reason",
    "currency",
    "invoice_total",
    "invoice_total_major",
    "line",
    "description",
    "seats_before",
    "seats_after",
    "quantity",
    "unit_price",
    "unit_price_major",
    "days",
    "days_in_period",
    "period_start",
    "period_end",
    "amount",
    "amount_major",
)


def _day_start(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), UTC)


def invoices_csv(
    db: Database, caller: Caller, start: date | None, end: date | None
) -> AsyncIterator[str]:
    """Every invoice of the account made from ``start`` (included) to ``end`` (excluded), UTC
    days, oldest first, as CSV (RFC 4180): a header, then one row per line with its invoice's
    figures. Amounts in minor units, and beside them in major units as a plain decimal."""
    caller.require_admin_or_service()
    if start is not None and end is not None and end <= start:
        raise ValidationFailed(
            "`to` must be after `from` (from is included, to is not).",
            errors=[{"loc": ["query", "to"], "msg": "must be after from"}],
        )
    account_id = caller.account_id

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        after: tuple[datetime, str] | None = None
        while True:
            async with db.read() as session:
                batch = await repository.invoices_between(
                    session, account_id, _day_start(start), _day_start(end), after, CSV_BATCH
                )
            for invoice in batch:
                for position, line in enumerate(invoice.lines, 1):
                    writer.writerow(_csv_row(invoice, position, line))
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(batch) < CSV_BATCH:
                return
            after = (batch[-1].created_at, batch[-1].id)

    return rows()


def _csv_row(invoice: Invoice, position: int, line: InvoiceLine) -> list[object]:
    currency = invoice.currency

    def iso(at: datetime | None) -> str:
        return "" if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")

    return [
        invoice.number,
        invoice.id,
        invoice.kind.value,
        invoice.status.value,
        iso(invoice.created_at),
        iso(invoice.paid_at),
        invoice.charge_id or "",
        invoice.failure_reason or "",
        currency,
        invoice.total,
        major_units(invoice.total, currency),
        position,
        line.description,
        "" if line.seats_before is None else line.seats_before,
        "" if line.seats_after is None else line.seats_after,
        line.quantity,
        line.unit_price,
        major_units(line.unit_price, currency),
        "" if line.days is None else line.days,
        "" if line.days_in_period is None else line.days_in_period,
        line.period_start.isoformat(),
        line.period_end.isoformat(),
        line.amount,
        major_units(line.amount, currency),
    ]
