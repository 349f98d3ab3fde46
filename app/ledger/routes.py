"""The ledger and the audit log, read-only (R11)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.deps import (
    CallerDep,
    ClockDep,
    DbDep,
    ReplicaCallerDep,
    ReplicaSessionDep,
    SessionDep,
    SettingsDep,
)
from app.directory.repository import get_account
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


_CSV = "text/csv"
_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            _CSV: {
                "schema": {"type": "string"},
                "example": ",".join(service.CSV_COLUMNS) + "\r\n",
            }
        },
        "description": "With `format=csv` or `Accept: text/csv`: every invoice of the account "
        "made in [`from`, `to`), oldest first, one row per line (RFC 4180, a header row).",
    }
}
_PDF_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The invoice as a PDF document.",
    }
}


@router.get("/invoices", response_model=Page[InvoiceOut], responses=_CSV_RESPONSE)
@declare(*USER, NotAdmin)
async def list_invoices(
    request: Request,
    caller: ReplicaCallerDep,
    session: ReplicaSessionDep,
    db: DbDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
    status: Annotated[
        InvoiceStatusFilter | None, Query(description="Only the invoices in this status.")
    ] = None,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="`csv` for the export (as `Accept: text/csv`); JSON pages otherwise."),
    ] = None,
    start: Annotated[
        date | None,
        Query(alias="from", description="CSV: invoices made from this UTC day (included)."),
    ] = None,
    end: Annotated[
        date | None,
        Query(alias="to", description="CSV: invoices made before this UTC day (excluded)."),
    ] = None,
) -> Page[InvoiceOut] | Response:
    """The ledger, newest first; or with `format=csv` (or `Accept: text/csv`) every invoice of
    a date range as CSV for accounting. Admins and services."""
    if format == "csv" or (format is None and _CSV in request.headers.get("accept", "")):
        rows = service.invoices_csv(db, caller, start, end)
        name = f"invoices-{caller.account_id}.csv"
        return StreamingResponse(
            rows,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    data, next_cursor = await service.list_invoices(session, caller, cursor, limit, status)
    return Page(data=data, next_cursor=next_cursor)


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
@declare(*USER, NotAdmin, InvoiceNotFound)
async def get_invoice(
    invoice_id: InvoiceIdPath, caller: CallerDep, session: SessionDep
) -> InvoiceOut:
    """One invoice with its lines."""
    return await service.get_invoice(session, caller, invoice_id)


@router.get(
    "/invoices/{invoice_id}/pdf",
    response_class=Response,
    responses=_PDF_RESPONSE,
)
@declare(*USER, NotAdmin, InvoiceNotFound)
async def get_invoice_pdf(
    invoice_id: InvoiceIdPath,
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    """One invoice as a PDF document (SPEC §10). Admins and services."""
    invoice = await service.get_invoice(session, caller, invoice_id)
    account = await get_account(session, caller.account_id)
    assert account is not None  # the caller's account: found when the caller was
    pdf = await service.invoice_pdf(
        invoice, account.id, account.name, settings.invoice_issuer, await clock.now(session)
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{invoice.number}.pdf"'},
    )


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
