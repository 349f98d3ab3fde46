"""Request and response bodies of the seats API."""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.billing.periods import BillingCycle
from app.billing.pricing import MAX_SEATS
from app.directory.models import Role
from app.ledger.schemas import InvoiceOut
from app.seats.status import PlanStatus


class SeatsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seats: int = Field(
        ge=0, le=MAX_SEATS, strict=True, description="The new seat total.", examples=[25]
    )


class Effective(StrEnum):
    """When a lower total takes effect (R15): at once (R7), or at the end of the paid period."""

    NOW = "now"
    PERIOD_END = "period_end"


class RemovalIn(SeatsIn):
    effective: Effective = Field(
        default=Effective.NOW,
        description="`now` (the default) lowers the total at once (R7); `period_end` schedules "
        "it for the end of the paid period (R15): the seats are kept and usable until then, "
        "and the next renewal invoices the new total.",
    )


class QuoteIn(SeatsIn):
    effective: Effective = Field(
        default=Effective.NOW,
        description="For a decrease: priced as a removal now or at the period's end (R15).",
    )


class PurchaseIn(SeatsIn):
    quote_id: str | None = Field(
        default=None,
        max_length=40,
        pattern=r"^quo_[0-9a-z]{26}$",
        description="The quote the admin confirmed: refused with quote_stale if it no longer "
        "matches (total, price, period or amount due) or expired.",
    )


class TrialOut(BaseModel):
    seats: int
    started_at: datetime
    ends_at: datetime


class PeriodOut(BaseModel):
    start: date
    end: date


class ScheduledChange(BaseModel):
    """A decrease scheduled for the end of the paid period (R15): cancel it with
    ``DELETE .../scheduled-change``."""

    seats: int = Field(description="The total from `effective_at` on.", examples=[10])
    effective_at: datetime = Field(
        description="The end of the paid period: the total becomes `seats` at this instant, "
        "and the renewal that starts then invoices `seats`."
    )


class OutstandingInvoice(BaseModel):
    """The renewal invoice to pay with ``POST .../invoices/{id}/pay``."""

    id: str = Field(examples=["inv_01jd4m7c1q9v0c5d3zq7yxk2ab"])
    total: int = Field(description="What is due, in minor units of the plan's currency.")
    failure_reason: str | None = Field(description="Why the last charge was declined.")
    due_since: datetime = Field(description="Its first decline, or when it was invoiced.")
    cancels_at: datetime = Field(
        description="When the plan will be canceled unless this is paid: `due_since` plus "
        "`SEATS_DUNNING_DAYS` (R9); the billing run that comes next after it cancels it."
    )


class PersonOut(BaseModel):
    """A user of the account, by name."""

    user_id: str
    name: str


class CallerOut(PersonOut):
    """The signed-in user who asked, so that a page shows what they may do without trying."""

    role: Role
    agent: bool = Field(description="Whether they hold a seat.")


class Alert(BaseModel):
    """A fact of R16 in force now, for a banner."""

    type: Literal[
        "seats.threshold_reached", "seats.exhausted", "trial.ending", "renewal.upcoming"
    ] = Field(
        description="`seats.threshold_reached`: usage is at or above `threshold` percent "
        "of the seats (the highest one reached); `seats.exhausted`: no empty seat, an "
        "assignment would be refused; `trial.ending`: the trial ends at `at`, within 3 "
        "days; `renewal.upcoming`: the renewal at `at`, within 7 days, will charge `amount`."
    )
    threshold: int | None = Field(
        description="`seats.threshold_reached`: the percentage; else null."
    )
    at: datetime | None = Field(
        description="`trial.ending`: when the trial ends; `renewal.upcoming`: when the renewal "
        "is charged; else null.",
    )
    amount: int | None = Field(
        description="`renewal.upcoming`: what the renewal is expected to charge, in minor units "
        "of the plan's currency (after any scheduled decrease); else null.",
    )


class PlanSummary(BaseModel):
    """The plan as the Manage Seats page shows it."""

    status: PlanStatus
    seats: int
    assigned: int
    available: int
    trial: TrialOut | None
    billing_cycle: BillingCycle
    currency: str
    unit_price: int | None = Field(
        description="Price of one seat for one month, in minor units; null when the account's "
        "currency has no configured price (an operator's error: its renewals cannot be "
        "invoiced and the plan is past due, R18)."
    )
    monthly_total: int | None = Field(
        description="What the paid seats cost per month (0 in a trial); null with `unit_price`."
    )
    cycle_total: int | None = Field(
        description="What the paid seats cost per billing cycle; null with `unit_price`."
    )
    current_period: PeriodOut | None
    next_renewal_at: datetime | None
    outstanding_invoice: OutstandingInvoice | None = Field(
        description="The oldest unpaid renewal, for a past-due banner to pay (R9); or null."
    )
    trial_seats: int = Field(
        default=0,
        description="The seats a free trial comes with (R3, `SEATS_TRIAL_SEATS`), for offering "
        "one before it starts.",
    )
    payment_method: str | None = Field(
        default=None,
        description="The account's payment method that charges go to (the platform's id), for "
        "a purchase's confirmation; for admins only, null otherwise.",
    )
    caller: CallerOut | None = Field(
        default=None,
        description="The user who asked, with their role and whether they are an agent, so a "
        "page shows what they may do without trying; null for a service.",
    )
    primary_admin: PersonOut | None = Field(
        default=None,
        description="The one user who may buy, remove seats and pay (R1), for telling others "
        "whom to ask; null for a service, or when the directory names none.",
    )
    alerts: list[Alert] = Field(
        description="The facts of R16 in force now, for banners (empty: none).",
    )
    scheduled_change: ScheduledChange | None = Field(
        default=None,
        description="A decrease scheduled for the end of the paid period (R15), or null; "
        "until then assignments beyond its total are refused.",
    )


class ProrationOut(BaseModel):
    period_start: date
    period_end: date
    days_remaining: int
    days_in_period: int


class QuotePreview(BaseModel):
    """What a new total would cost now (R8): a quote's body, computed and not stored."""

    current_seats: int
    seats: int
    change: int
    currency: str
    unit_price: int
    billing_cycle: BillingCycle
    monthly_total: int
    cycle_total: int
    due_now: int = Field(description="Charged now by a purchase of this total (0 if lower).")
    proration: ProrationOut
    allowed: bool = Field(description="False when the total is below the assigned seats (R4).")
    assigned: int
    effective: Effective = Field(
        default=Effective.NOW,
        description="When the total takes effect: `now` (purchases and removals now), or "
        "`period_end` for a decrease scheduled for the end of the paid period (R15).",
    )
    effective_at: datetime | None = Field(
        default=None,
        description="The instant the total takes effect: now, or the end of the paid period. "
        "Until then the current total stays (and is what is paid for).",
    )
    next_renewal_at: datetime | None = Field(
        default=None, description="When the next renewal is invoiced with this total."
    )
    next_renewal_total: int | None = Field(
        default=None,
        description="What that renewal will invoice for this total, in minor units (R9, R12: "
        "a bridge renewal after a change of cycle or anchor bills only its days).",
    )


class QuoteOut(QuotePreview):
    """A stored quote, which a purchase may confirm by its id until it expires."""

    id: str = Field(examples=["quo_01jd4m7c1q9v0c5d3zq7yxk2ab"])
    expires_at: datetime


class PurchaseOut(BaseModel):
    summary: PlanSummary
    invoice: InvoiceOut


class AgentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: str
    assigned_at: datetime
    assigned_by: str


class AgentCheck(BaseModel):
    user_id: str
    agent: bool
    active: bool = Field(description="An agent of a trialing, active or past-due plan.")

    def json_bytes(self) -> bytes:
        """The body FastAPI's own encoding would send, without its response-model pass (the
        hot read answers with these bytes; its schema stays this model's)."""
        body = {"user_id": self.user_id, "agent": self.agent, "active": self.active}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class AccountUser(BaseModel):
    """A user of the account from the directory, and whether it holds a seat."""

    user_id: str
    name: str
    email: str
    role: Role
    agent: bool
