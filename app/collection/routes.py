"""Paying an outstanding invoice (SPEC §4, R9). Thin: authenticate, collect, answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.collection.pay import pay_invoice as pay
from app.deps import CallerApartDep, CollectorDep, DbDep, OnceDep
from app.errors import (
    InvoiceNotFound,
    InvoiceNotPayable,
    NotPrimaryAdmin,
    PaymentDeclined,
    PaymentPending,
    PaymentUnavailable,
    PurchaseVoided,
)
from app.ledger.routes import InvoiceIdPath
from app.ledger.schemas import InvoiceOut
from app.operations import USER, Key, declare

router = APIRouter(prefix="/v1/accounts/{account_id}/conversations", tags=["ledger"])


@router.post(
    "/invoices/{invoice_id}/pay",
    response_model=InvoiceOut,
)
@declare(
    *USER,
    NotPrimaryAdmin,
    InvoiceNotFound,
    InvoiceNotPayable,
    PaymentDeclined,
    PaymentPending,
    PaymentUnavailable,
    PurchaseVoided,
    key=Key.OPTIONAL,
)
async def pay_invoice(
    invoice_id: InvoiceIdPath,
    caller: CallerApartDep,
    once: OnceDep,
    db: DbDep,
    collector: CollectorDep,
) -> JSONResponse:
    """Charge an outstanding (pending) invoice again (R9). Primary admin only."""
    reply = await pay(db, collector, once, caller, invoice_id)
    return reply.to_response()
