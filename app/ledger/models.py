"""The append-only ledger (invoices and their lines) and audit log (events), R11."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base
from app.sqltypes import EnumText, UTCDateTime


class InvoiceKind(StrEnum):
    PURCHASE = "purchase"
    RENEWAL = "renewal"


class InvoiceStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


class Invoice(Base):
    __tablename__ = "invoice"
    __table_args__ = (
        CheckConstraint("kind IN ('purchase', 'renewal')", name="kind"),
        CheckConstraint("status IN ('pending', 'paid', 'failed')", name="status"),
        CheckConstraint("total >= 0", name="total_not_negative"),
        CheckConstraint("status != 'paid' OR paid_at IS NOT NULL", name="paid_has_paid_at"),
        Index("ix_invoice_account_id_created_at", "account_id", "created_at", "id"),
        # One renewal per plan and period, whoever runs billing and however often.
        Index(
            "uq_invoice_renewal_period",
            "account_id",
            "period_start",
            unique=True,
            sqlite_where=text("kind = 'renewal'"),
            postgresql_where=text("kind = 'renewal'"),
        ),
        # At most one purchase waiting for its charge per account (SPEC §6).
        Index(
            "uq_invoice_pending_purchase",
            "account_id",
            unique=True,
            sqlite_where=text("kind = 'purchase' AND status = 'pending'"),
            postgresql_where=text("kind = 'purchase' AND status = 'pending'"),
        ),
        Index(
            "ix_invoice_status_pending",
            "status",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), ForeignKey("account.id"))
    kind: Mapped[InvoiceKind] = mapped_column(EnumText(InvoiceKind))
    status: Mapped[InvoiceStatus] = mapped_column(EnumText(InvoiceStatus))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(BigInteger)
    # What paying this invoice does to the plan: the seat total it buys or renews, and the
    # period it covers.
    seats: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    payment_method: Mapped[str] = mapped_column(String(200))
    # The caller's idempotency scope for a purchase, so that a retry finds its invoice.
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    charge_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String(200))

    lines: Mapped[list[InvoiceLine]] = relationship(
        order_by="InvoiceLine.position", lazy="selectin"
    )


class InvoiceLine(Base):
    __tablename__ = "invoice_line"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_not_negative"),)

    invoice_id: Mapped[str] = mapped_column(String(40), ForeignKey("invoice.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)


class Event(Base):
    __tablename__ = "event"
    __table_args__ = (Index("ix_event_account_id_at", "account_id", "at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), ForeignKey("account.id"))
    type: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class ChargeAttempt(Base):
    """Each call to the gateway for an invoice, with its outcome (append-only).

    A declined renewal is retried under a new gateway key (the gateway would replay the
    decline for the old one); an attempt whose outcome is unknown (timeout, outage) is
    retried under the same key, so that it can never charge twice.
    """

    __tablename__ = "charge_attempt"
    __table_args__ = (
        CheckConstraint("outcome IN ('succeeded', 'declined', 'unavailable')", name="outcome"),
    )

    invoice_id: Mapped[str] = mapped_column(String(40), ForeignKey("invoice.id"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    gateway_key: Mapped[str] = mapped_column(String(60))
    # The method charged: a retry under the same key must send the very same request.
    payment_method: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
