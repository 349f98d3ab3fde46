"""The ledger and the audit log, read-only, plus paying an outstanding invoice (R9, R11)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from app.deps import (
    CallerApartDep,
    CallerDep,
    ClockDep,
    DbDep,
    GatewayDep,
    IdempotencyDep,
    IdempotentRequestDep,
    SessionDep,
    SettingsDep,
)
from app.ledger import service
from app.ledger.schemas import EventOut, InvoiceOut
from app.openapi_errors import problems
from app.pagination import CursorQuery, LimitQuery, Page
from app.retry import RetryOnConflictRoute

router = APIRouter(
    prefix="/v1/accounts/{account_id}/conversations",
    tags=["ledger"],
    route_class=RetryOnConflictRoute,
)

InvoiceIdPath = Annotated[str, Path(max_length=40, pattern=r"^inv_[0-9a-z]{26}$")]


@router.get("/invoices", response_model=Page[InvoiceOut], responses=problems(403))
async def list_invoices(
    caller: CallerDep, session: SessionDep, limit: LimitQuery = 20, cursor: CursorQuery = None
) -> Page[InvoiceOut]:
    """The ledger, newest first. Admins and services."""
    data, next_cursor = await service.list_invoices(session, caller, cursor, limit)
    return Page(data=data, next_cursor=next_cursor)


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut, responses=problems(403))
async def get_invoice(
    invoice_id: InvoiceIdPath, caller: CallerDep, session: SessionDep
) -> InvoiceOut:
    """One invoice with its lines."""
    return await service.get_invoice(session, caller, invoice_id)


@router.post(
    "/invoices/{invoice_id}/pay",
    response_model=InvoiceOut,
    responses=problems(400, 402, 403, 409),
)
async def pay_invoice(
    invoice_id: InvoiceIdPath,
    caller: CallerApartDep,
    req: IdempotentRequestDep,
    db: DbDep,
    gateway: GatewayDep,
    idem: IdempotencyDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Charge an outstanding (pending) invoice again (R9). Primary admin only."""
    return await service.pay_invoice(db, gateway, idem, clock, settings, caller, req, invoice_id)


@router.get("/events", response_model=Page[EventOut], responses=problems(403))
async def list_events(
    caller: CallerDep, session: SessionDep, limit: LimitQuery = 20, cursor: CursorQuery = None
) -> Page[EventOut]:
    """The audit log, newest first. Admins and services."""
    data, next_cursor = await service.list_events(session, caller, cursor, limit)
    return Page(data=data, next_cursor=next_cursor)
