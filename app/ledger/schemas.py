"""Bodies of the ledger and audit-log endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.ledger.models import InvoiceKind, InvoiceStatus

# Every status SPEC §4 names, as a filter: a status no row holds matches nothing.
InvoiceStatusFilter = Literal["pending", "paid", "failed", "void", "uncollectible"]


class InvoiceLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    description: str
    quantity: int
    unit_price: int
    amount: int
    period_start: date
    period_end: date
    seats_before: int | None
    seats_after: int | None
    days: int | None
    days_in_period: int | None


class InvoiceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    number: str
    kind: InvoiceKind
    status: InvoiceStatus
    currency: str
    total: int
    lines: list[InvoiceLineOut]
    created_at: datetime
    paid_at: datetime | None
    charge_id: str | None
    failure_reason: str | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    type: str
    actor: str
    at: datetime
    data: dict[str, Any]
