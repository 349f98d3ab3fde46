"""Reading the ledger and audit log; paying an outstanding invoice (R9, R11)."""

from __future__ import annotations

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Caller
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.errors import (
    AppError,
    InvoiceNotFound,
    InvoiceNotPayable,
    PaymentDeclined,
    PaymentPending,
)
from app.idempotency import IdempotencyStore, IdempotentRequest
from app.ledger import repository
from app.ledger.models import InvoiceKind, InvoiceStatus
from app.ledger.schemas import EventOut, InvoiceOut
from app.pagination import next_cursor
from app.payments.gateway import ChargeDeclined, Gateway


async def list_invoices(
    session: AsyncSession, caller: Caller, cursor: str | None, limit: int, status: str | None = None
) -> tuple[list[InvoiceOut], str | None]:
    caller.require_admin_or_service()
    rows = await repository.list_invoices(session, caller.account_id, cursor, limit, status)
    rows, cursor_out = next_cursor(rows, limit, lambda i: (i.created_at, i.id))
    return [InvoiceOut.model_validate(i) for i in rows], cursor_out


async def get_invoice(session: AsyncSession, caller: Caller, invoice_id: str) -> InvoiceOut:
    caller.require_admin_or_service()
    invoice = await repository.get_invoice(session, invoice_id)
    if invoice is None or invoice.account_id != caller.account_id:
        raise InvoiceNotFound(f"No invoice {invoice_id!r} in this account.")
    return InvoiceOut.model_validate(invoice)


async def list_events(
    session: AsyncSession, caller: Caller, cursor: str | None, limit: int
) -> tuple[list[EventOut], str | None]:
    caller.require_admin_or_service()
    rows = await repository.list_events(session, caller.account_id, cursor, limit)
    rows, cursor_out = next_cursor(rows, limit, lambda e: (e.at, e.id))
    return [EventOut.model_validate(e) for e in rows], cursor_out


async def pay_invoice(
    db: Database,
    gateway: Gateway,
    idem: IdempotencyStore,
    clock: Clock,
    settings: Settings,
    caller: Caller,
    req: IdempotentRequest | None,
    invoice_id: str,
) -> JSONResponse:
    """R9: charge an outstanding invoice now; paying the last one ends ``past_due``."""
    # Imported here: renewals builds on purchases, which build on this package's models.
    from app.renewals.service import charge_renewal
    from app.seats import purchase as purchases

    caller.require_primary_admin()
    if req is not None:
        stored = await idem.claim(req)
        if stored is not None:
            return stored.to_response()
    deps = purchases.Payments(db, gateway, idem, clock, settings)
    try:
        async with db.transaction() as session:
            invoice = await repository.get_invoice(session, invoice_id)
        if invoice is None or invoice.account_id != caller.account_id:
            raise InvoiceNotFound(f"No invoice {invoice_id!r} in this account.")
        if invoice.status is not InvoiceStatus.PENDING:
            raise InvoiceNotPayable(f"The invoice is {invoice.status.value}, not outstanding.")
        if invoice.kind is InvoiceKind.PURCHASE:
            outcome = await purchases.charge(gateway, invoice)
            async with db.transaction() as session:
                invoice = await purchases.settle(session, invoice.id, outcome, clock, caller.actor)
        else:
            result = await charge_renewal(deps, invoice, caller.actor)
            if result is None:
                raise PaymentPending("The payment service did not answer; retry.")
            if isinstance(result, ChargeDeclined):
                raise PaymentDeclined(
                    f"The payment method was declined ({result.reason}).",
                    invoice_id=invoice.id,
                    reason=result.reason,
                )
        async with db.transaction() as session:
            fresh = await repository.get_invoice(session, invoice_id)
            assert fresh is not None
            if fresh.status is InvoiceStatus.FAILED:
                raise purchases.declined(fresh)
            body = jsonable_encoder(InvoiceOut.model_validate(fresh))
            if req is not None:
                await idem.store(session, req, 200, body)
        return JSONResponse(body, status_code=200)
    except AppError as exc:
        if req is not None:
            await idem.finish_with_error(req, exc)
        raise
    except BaseException:
        if req is not None:
            await idem.release_quietly(req)
        raise
