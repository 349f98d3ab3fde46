"""The ledger and the audit log, read-only (R11)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from app.deps import CallerDep, ReplicaCallerDep, ReplicaSessionDep, SessionDep
from app.errors import InvoiceNotFound, NotAdmin
from app.ledger import service
from app.ledger.schemas import EventOut, InvoiceOut, InvoiceStatusFilter
from app.operations import USER, declare
from app.pagination import CursorQuery, LimitQuery, Page
from app.retry import RetryOnConflictRoute

router = APIRouter(
    prefix="/v1/accounts/{account_id}/conversations",
    tags=["ledger"],
    route_class=RetryOnConflictRoute,
)

_INVOICE_ID = re.compile(r"^inv_[0-9a-z]{26}$")


async def valid_invoice_id(
    invoice_id: Annotated[str, Path(description="The invoice id (`inv_...`).")],
) -> str:
    """An id this service could have made: any other is as unknown as a missing one (404).

    One answer for both, so a client has one case to handle; and a malformed id never
    reaches the database (a NUL byte cannot even be sent to PostgreSQL).
    """
    if not _INVOICE_ID.fullmatch(invoice_id):
        raise InvoiceNotFound("No such invoice in this account.")
    return invoice_id


InvoiceIdPath = Annotated[str, Depends(valid_invoice_id)]


@router.get("/invoices", response_model=Page[InvoiceOut])
@declare(*USER, NotAdmin)
async def list_invoices(
    caller: ReplicaCallerDep,
    session: ReplicaSessionDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
    status: Annotated[
        InvoiceStatusFilter | None, Query(description="Only the invoices in this status.")
    ] = None,
) -> Page[InvoiceOut]:
    """The ledger, newest first. Admins and services."""
    data, next_cursor = await service.list_invoices(session, caller, cursor, limit, status)
    return Page(data=data, next_cursor=next_cursor)


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
@declare(*USER, NotAdmin, InvoiceNotFound)
async def get_invoice(
    invoice_id: InvoiceIdPath, caller: CallerDep, session: SessionDep
) -> InvoiceOut:
    """One invoice with its lines."""
    return await service.get_invoice(session, caller, invoice_id)


@router.get("/events", response_model=Page[EventOut])
@declare(*USER, NotAdmin)
async def list_events(
    caller: ReplicaCallerDep,
    session: ReplicaSessionDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> Page[EventOut]:
    """The audit log, newest first. Admins and services."""
    data, next_cursor = await service.list_events(session, caller, cursor, limit)
    return Page(data=data, next_cursor=next_cursor)
