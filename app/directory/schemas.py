"""Request and response bodies of the directory (internal endpoints)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from app.billing.periods import BillingCycle
from app.directory.models import Role

# No control characters (NUL, newlines...): PostgreSQL cannot store NUL in text at all.
Name = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class Strict(BaseModel):
    """Unknown fields are refused: a body cannot set what the endpoint does not offer."""

    model_config = ConfigDict(extra="forbid")


def _iso_text(value: object) -> object:
    """Dates and times come as ISO 8601 text: a number is not a date (no epoch guessing)."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string")
    return value


IsoText = BeforeValidator(_iso_text)


class AccountIn(Strict):
    name: Name = Field(examples=["Acme Inc."])
    billing_cycle: BillingCycle = Field(examples=["monthly"])
    billing_anchor: Annotated[date, IsoText] = Field(
        description="Periods run from this date's day (clamped in shorter months).",
        examples=["2026-11-01"],
    )
    payment_method: Annotated[
        str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_\-.:]+$")
    ] = Field(examples=["pm_card_visa"])
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        default=None, description="ISO 4217 code; defaults to SEATS_CURRENCY.", examples=["USD"]
    )


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    billing_cycle: BillingCycle
    billing_anchor: date
    payment_method: str
    currency: str
    created_at: datetime
    updated_at: datetime


class UserIn(Strict):
    email: Annotated[
        str,
        StringConstraints(
            min_length=3, max_length=320, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"
        ),
    ] = Field(examples=["alice@acme.test"])
    name: Name = Field(examples=["Alice"])
    role: Role = Field(examples=["primary_admin"])


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    account_id: str
    id: str
    email: str
    name: str
    role: Role
    created_at: datetime
    updated_at: datetime
