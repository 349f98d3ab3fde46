"""The one place an invoice and its lines are made (SPEC §3, §10): a purchase, a renewal, or
any kind to come goes through here, so every line is described in one format and carries the
same facts (seats before -> after, unit price, quantity, days, period, amount).

Pure: column values, no I/O. Writing them is the caller's transaction's job (a purchase's one
statement, ``app.purchases.repository``; a renewal's batch, ``repository.add_invoice``), after
taking the invoice's number from ``repository.take_number`` in that same transaction.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from app.billing.periods import BillingCycle, Period
from app.ledger.models import InvoiceKind, InvoiceStatus
from app.ledger.schemas import InvoiceLineOut

PRODUCT = "Conversations seats"
EN_DASH = " \u2013 "  # between the dates of a period
# Lines one invoice may have: what a document renders in full (``app.ledger.document``).
MAX_LINES = 100


def long_date(day: date) -> str:
    """The one date format of documents and descriptions: "January 1, 2027"."""
    return f"{day:%B} {day.day}, {day.year}"


def account_part(account_id: str) -> str:
    """The account's part of its invoice numbers: 8 characters of base32 of the id's SHA-256.

    Short, stable (a function of the id alone: no table, no setting), the same length for
    every account and free of the characters an id may hold that read badly in a number
    ("_", "-", case). Uniqueness is per account (the sequence); 40 bits make two accounts
    sharing a part unlikely, and harmless: the invoice's id is unique everywhere.
    """
    digest = hashlib.sha256(account_id.encode()).digest()
    return base64.b32encode(digest).decode()[:8]


def invoice_number(prefix: str, account_id: str, sequence: int) -> str:
    """``<PREFIX>-<ACCOUNT PART>-<0001>``: four digits at least, more past 9999."""
    return f"{prefix}-{account_part(account_id)}-{sequence:04d}"


@dataclass(frozen=True, slots=True)
class Number:
    """An invoice's place in its account's sequence, taken in the invoice's transaction."""

    sequence: int
    number: str


def describe(
    *,
    seats_before: int,
    seats_after: int,
    cycle: BillingCycle,
    period_start: date,
    period_end: date,
    days: int | None = None,
    days_in_period: int | None = None,
) -> str:
    """A line's description: "Conversations seats 10 → 12, monthly, 14 of 31 days, December 18,
    2026 to January 1, 2027" (with an en dash between the dates). The seat totals, not their
    difference: a declined attempt at 12 seats reads 10 → 12. The days only for a prorated
    line."""
    seats = f"{seats_after}" if seats_before == seats_after else f"{seats_before} → {seats_after}"
    text = f"{PRODUCT} {seats}, {cycle.value}"
    if days is not None and days_in_period is not None:
        text += f", {days} of {days_in_period} days"
    return f"{text}, {long_date(period_start)}{EN_DASH}{long_date(period_end)}"


@dataclass(frozen=True, slots=True)
class NewInvoice:
    """An invoice's column values and its lines', ready to be written."""

    invoice: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)

    def lines_out(self) -> list[InvoiceLineOut]:
        """The lines as the API shows them."""
        return [InvoiceLineOut.model_validate(line) for line in self.lines]


def _line(
    *,
    seats_before: int,
    seats_after: int,
    quantity: int,
    unit_price: int,
    cycle: BillingCycle,
    amount: int,
    start: date,
    end: date,
    days: int | None,
    days_in_period: int | None,
) -> dict[str, Any]:
    return {
        "position": 0,
        "description": describe(
            seats_before=seats_before,
            seats_after=seats_after,
            cycle=cycle,
            period_start=start,
            period_end=end,
            days=days,
            days_in_period=days_in_period,
        ),
        "quantity": quantity,
        # The price of one seat for the line's cycle (the monthly price x its months).
        "unit_price": unit_price * cycle.months,
        "amount": amount,
        "period_start": start,
        "period_end": end,
        "seats_before": seats_before,
        "seats_after": seats_after,
        "days": days,
        "days_in_period": days_in_period,
    }


def _invoice(
    *,
    id: str,
    number: Number,
    account_id: str,
    kind: InvoiceKind,
    currency: str,
    total: int,
    seats: int,
    period: Period,
    cycle: BillingCycle,
    payment_method: str,
    created_by: str,
    created_at: datetime,
    request_key: str | None = None,
    request_fingerprint: str | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "account_id": account_id,
        "sequence": number.sequence,
        "number": number.number,
        "kind": kind,
        "status": InvoiceStatus.PENDING,
        "currency": currency,
        "total": total,
        "seats": seats,
        "period_start": period.start,
        "period_end": period.end,
        "billing_cycle": cycle,
        "payment_method": payment_method,
        "request_key": request_key,
        "request_fingerprint": request_fingerprint,
        "created_by": created_by,
        "created_at": created_at,
    }


def purchase(
    *,
    id: str,
    number: Number,
    account_id: str,
    currency: str,
    payment_method: str,
    seats_before: int,
    seats_after: int,
    charged_seats: int,
    unit_price: int,
    cycle: BillingCycle,
    period: Period,
    today: date,
    days: int,
    days_in_period: int,
    amount: int,
    created_by: str,
    created_at: datetime,
    request_key: str,
    request_fingerprint: str,
) -> NewInvoice:
    """A purchase raising the plan from ``seats_before`` to ``seats_after``: one prorated line
    of ``charged_seats`` (the added seats, or all of them out of a trial) at the monthly
    ``unit_price`` for ``days`` of ``days_in_period``, from ``today`` to the period's end; the
    invoice covers the plan's ``period`` (what paying it gives the plan)."""
    line = _line(
        seats_before=seats_before,
        seats_after=seats_after,
        quantity=charged_seats,
        unit_price=unit_price,
        cycle=cycle,
        amount=amount,
        start=today,
        end=period.end,
        days=days,
        days_in_period=days_in_period,
    )
    invoice = _invoice(
        id=id,
        number=number,
        account_id=account_id,
        kind=InvoiceKind.PURCHASE,
        currency=currency,
        total=amount,
        seats=seats_after,
        period=period,
        cycle=cycle,
        payment_method=payment_method,
        created_by=created_by,
        created_at=created_at,
        request_key=request_key,
        request_fingerprint=request_fingerprint,
    )
    return NewInvoice(invoice, [line])


def renewal(
    *,
    id: str,
    number: Number,
    account_id: str,
    currency: str,
    payment_method: str,
    seats_before: int,
    seats_after: int,
    unit_price: int,
    cycle: BillingCycle,
    period: Period,
    billed: Period,
    amount: int,
    created_by: str,
    created_at: datetime,
) -> NewInvoice:
    """A renewal of ``seats_after`` seats (``seats_before`` in the period that ended) into
    ``period``, billing ``billed``: the whole period, or for a bridge (§3) its days from the
    old end, shown as ``days`` of ``days_in_period``. The invoice covers ``billed`` (one
    renewal per account and first day billed)."""
    bridge = billed != period
    line = _line(
        seats_before=seats_before,
        seats_after=seats_after,
        quantity=seats_after,
        unit_price=unit_price,
        cycle=cycle,
        amount=amount,
        start=billed.start,
        end=billed.end,
        days=billed.days if bridge else None,
        days_in_period=period.days if bridge else None,
    )
    invoice = _invoice(
        id=id,
        number=number,
        account_id=account_id,
        kind=InvoiceKind.RENEWAL,
        currency=currency,
        total=amount,
        seats=seats_after,
        period=billed,
        cycle=cycle,
        payment_method=payment_method,
        created_by=created_by,
        created_at=created_at,
    )
    return NewInvoice(invoice, [line])
