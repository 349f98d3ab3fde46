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
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.billing.periods import BillingCycle
from app.db import Base
from app.ledger.attempts import AttemptOperation, AttemptOutcome
from app.sqltypes import EnumText, UTCDateTime

__all__ = [
    "AttemptOperation",
    "AttemptOutcome",
    "ChargeAttempt",
    "ChargeOutcome",
    "Event",
    "Invoice",
    "InvoiceCounter",
    "InvoiceKind",
    "InvoiceLine",
    "InvoiceStatus",
]


class InvoiceKind(StrEnum):
    PURCHASE = "purchase"
    RENEWAL = "renewal"


class InvoiceStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class Invoice(Base):
    __tablename__ = "invoice"
    __table_args__ = (
        CheckConstraint("kind IN ('purchase', 'renewal')", name="kind"),
        CheckConstraint(
            "status IN ('pending', 'paid', 'failed', 'void', 'uncollectible')", name="status"
        ),
        CheckConstraint("total >= 0", name="total_not_negative"),
        CheckConstraint("status != 'paid' OR paid_at IS NOT NULL", name="paid_has_paid_at"),
        Index("ix_invoice_account_id_created_at", "account_id", "created_at", "id"),
        # Numbers are unique per account (SPEC §10); gapless because each is taken from the
        # account's counter in the invoice's own transaction.
        Index("uq_invoice_account_id_sequence", "account_id", "sequence", unique=True),
        Index("uq_invoice_account_id_number", "account_id", "number", unique=True),
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
    # The invoice's place in its account's sequence (1, 2, ...) and its number as issued
    # (``<PREFIX>-<ACCOUNT PART>-<0001>``): kept as written, a later prefix renames nothing.
    sequence: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[str] = mapped_column(String(60))
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
    # The request's body fingerprint: the same key with another body is refused even after
    # the stored response was purged (SPEC §5).
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # The cycle the invoice was priced under: a purchase out of a trial gives it to the plan.
    billing_cycle: Mapped[BillingCycle | None] = mapped_column(EnumText(BillingCycle))
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
    # What the line explains (SPEC §10): the plan's seat total before and after, and for a
    # prorated line its days of the period. NULL where a line written before they were kept
    # cannot tell (migration 0009).
    seats_before: Mapped[int | None] = mapped_column(BigInteger)
    seats_after: Mapped[int | None] = mapped_column(BigInteger)
    days: Mapped[int | None] = mapped_column(Integer)
    days_in_period: Mapped[int | None] = mapped_column(Integer)


class InvoiceCounter(Base):
    """The last invoice number taken per account: one row each, raised (row-locked) by the
    transaction that makes an invoice, so two of them wait for each other and a rolled-back
    one gives its number back."""

    __tablename__ = "invoice_counter"
    __table_args__ = (CheckConstraint("last >= 0", name="last_not_negative"),)

    account_id: Mapped[str] = mapped_column(String(64), ForeignKey("account.id"), primary_key=True)
    last: Mapped[int] = mapped_column(BigInteger)


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
    """One call to the gateway for an invoice, recorded and committed before the call (SPEC §6).

    The row is the collector's intent and claim: its primary key (invoice, number) lets one
    collector, and only one, make attempt ``number``, so two collectors of one invoice never
    send at once. An attempt whose outcome is unknown is sent again under the same key (as a
    new attempt); a declined one is followed by a new key. Append-only.
    """

    __tablename__ = "charge_attempt"
    __table_args__ = (
        CheckConstraint("operation IN ('charge', 'void')", name="operation"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    invoice_id: Mapped[str] = mapped_column(String(40), ForeignKey("invoice.id"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation: Mapped[AttemptOperation] = mapped_column(EnumText(AttemptOperation))
    gateway_key: Mapped[str] = mapped_column(String(60))
    # The request sent: a retry under the same key must send the very same one.
    payment_method: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_by: Mapped[str] = mapped_column(String(80))
    # The service clock (billing time) and the wall clock (the claim's lease: processes).
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChargeOutcome(Base):
    """What the gateway answered to one attempt, appended after the call (append-only)."""

    __tablename__ = "charge_outcome"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('succeeded', 'declined', 'voided', 'unavailable', 'rejected')",
            name="outcome",
        ),
        ForeignKeyConstraint(
            ["invoice_id", "number"], ["charge_attempt.invoice_id", "charge_attempt.number"]
        ),
    )

    invoice_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    outcome: Mapped[AttemptOutcome] = mapped_column(EnumText(AttemptOutcome))
    reason: Mapped[str | None] = mapped_column(String(200))
    charge_id: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
