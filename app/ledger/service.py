"""Reading the ledger and the audit log (R11). No payment logic: that is ``app.collection``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Caller
from app.errors import InvoiceNotFound
from app.ledger import repository
from app.ledger.models import Invoice, InvoiceStatus
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
