"""The plan (one per account), its agents and stored quotes."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.billing.periods import BillingCycle
from app.db import Base
from app.seats.status import PlanStatus
from app.sqltypes import EnumText, UTCDateTime


class Plan(Base):
    __tablename__ = "plan"
    __table_args__ = (
        CheckConstraint(
            "status IN ('none', 'trialing', 'trial_expired', 'active', 'past_due', 'canceled')",
            name="status",
        ),
        CheckConstraint("seats >= 0", name="seats_not_negative"),
        CheckConstraint("assigned >= 0", name="assigned_not_negative"),
        # R10 and R9 keep the assignments of an expired trial or a canceled plan (0 seats):
        # only then may they exceed the total. Everywhere else the database refuses it.
        CheckConstraint(
            "assigned <= seats OR status IN ('trial_expired', 'canceled')",
            name="assigned_le_seats",
        ),
        CheckConstraint(
            "(period_start IS NULL) = (period_end IS NULL) AND "
            "(period_start IS NULL OR period_start < period_end)",
            name="period",
        ),
        # R15: a scheduled decrease names its total and the end of the period it waits for.
        CheckConstraint(
            "(scheduled_seats IS NULL) = (scheduled_for IS NULL) AND "
            "(scheduled_seats IS NULL OR scheduled_seats >= 0)",
            name="scheduled_change",
        ),
    )

    account_id: Mapped[str] = mapped_column(String(64), ForeignKey("account.id"), primary_key=True)
    status: Mapped[PlanStatus] = mapped_column(EnumText(PlanStatus))
    seats: Mapped[int] = mapped_column(BigInteger)
    # Maintained with every assign/unassign under the plan's row lock, so that the hot
    # path never counts rows.
    assigned: Mapped[int] = mapped_column(BigInteger)
    trial_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trial_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The paid-through period of an active or past-due plan, and the cycle it was billed
    # under (R12): purchases until its end are priced against these, never against an
    # account setting changed since. Always a whole period of that cycle's schedule.
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    billing_cycle: Mapped[BillingCycle | None] = mapped_column(EnumText(BillingCycle))
    # A purchase charged but not yet settled (SPEC §6): the invoice and the total it buys.
    # Read under the same row lock as the seat rules, so no other query is needed to refuse
    # a second purchase or an assignment the pending total could not hold.
    pending_invoice_id: Mapped[str | None] = mapped_column(String(40))
    pending_seats: Mapped[int | None] = mapped_column(BigInteger)
    # A decrease scheduled for the end of the paid period (R15): the total it leaves, and that
    # period's end (the period the plan was billed under, R12), at 00:00 UTC of which the
    # total becomes ``scheduled_seats`` whether or not the billing run has recorded it.
    scheduled_seats: Mapped[int | None] = mapped_column(BigInteger)
    scheduled_for: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Assignment(Base):
    """A seat assigned to a user, who is then an agent."""

    __tablename__ = "assignment"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "user_id"], ["account_user.account_id", "account_user.id"]
        ),
        Index("ix_assignment_account_id_assigned_at", "account_id", "assigned_at", "user_id"),
    )

    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("plan.account_id"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    assigned_by: Mapped[str] = mapped_column(String(80))


class Quote(Base):
    __tablename__ = "quote"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), ForeignKey("account.id"), index=True)
    current_seats: Mapped[int] = mapped_column(BigInteger)
    seats: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    billing_cycle: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    due_now: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
