"""SQL of the purchase flow: its pending invoice, written once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger.models import Invoice, InvoiceLine
from app.upsert import insert_new


async def add_invoice(
    session: AsyncSession, invoice: Mapping[str, Any], lines: list[dict[str, Any]]
) -> bool:
    """Insert a purchase's invoice and its lines; False, and nothing written, if its request
    already has one (a retry: the caller then reads that one)."""
    dialect = session.get_bind().dialect.name
    # Only a conflict on the request's key is expected: any other (a second pending purchase
    # of the account) still raises.
    claim = insert_new(Invoice, dialect, invoice, on=[Invoice.request_key])
    if await session.scalar(claim.returning(Invoice.id)) is None:
        return False
    await session.execute(insert(InvoiceLine).values(lines))
    return True
