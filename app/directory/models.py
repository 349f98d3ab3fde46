"""Accounts and their users, as the platform tells us about them."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.billing.periods import BillingCycle
from app.db import Base
from app.sqltypes import EnumText, UTCDateTime


class Role(StrEnum):
    PRIMARY_ADMIN = "primary_admin"
    ADMIN = "admin"
    USER = "user"

    @property
    def is_admin(self) -> bool:
        return self in (Role.PRIMARY_ADMIN, Role.ADMIN)


class Account(Base):
    __tablename__ = "account"
    __table_args__ = (
        CheckConstraint("billing_cycle IN ('monthly', 'yearly')", name="billing_cycle"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    billing_cycle: Mapped[BillingCycle] = mapped_column(EnumText(BillingCycle))
    billing_anchor: Mapped[date] = mapped_column(Date)
    payment_method: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class User(Base):
    __tablename__ = "account_user"
    __table_args__ = (
        CheckConstraint("role IN ('primary_admin', 'admin', 'user')", name="role"),
        # At most one primary admin per account, enforced by the database so that two
        # concurrent "make X primary" calls cannot both win.
        Index(
            "uq_account_user_primary_admin",
            "account_id",
            unique=True,
            sqlite_where=text("role = 'primary_admin'"),
            postgresql_where=text("role = 'primary_admin'"),
        ),
    )

    account_id: Mapped[str] = mapped_column(String(64), ForeignKey("account.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(EnumText(Role))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
