"""Purchases: money that cannot go wrong (SPEC R6, §5, §6).

The order is what makes it safe, and it must not change:

1. In one transaction, with the plan locked: check the rules, price the purchase and ask
   collection to open a ``pending`` invoice (``Collector.open``: the plan notes it is waiting
   for it, and its first attempt is recorded with it, all written by one statement on
   PostgreSQL). Commit.
2. Collect it (``Collector.finish``): the gateway charged with the invoice id as the key, the
   outcome appended and the invoice settled, paid (seats raised) or failed, in one
   transaction.
3. Answer from the invoice as it now stands: a paid one here, any other the problem
   collection raises for it (``app.collection.results``, the same as ``/pay``'s).

A timeout in 2 leaves a pending invoice with no definitive answer, and a crash after 1 one
whose attempt has no outcome (resent once its lease has passed): a retry with the same
``Idempotency-Key``, ``/pay`` or the billing run completes it under the same gateway key; after
``SEATS_PENDING_PURCHASE_HOURS`` the billing run voids it (R14). Seats are never raised
without a paid invoice, and the answer to a key is always derived from its invoice: a retry
after any of these gets the final outcome, whoever reached it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi.encoders import jsonable_encoder
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Caller
from app.billing.pricing import PriceChange
from app.clock import Clock
from app.collection.repository import InvoiceState
from app.collection.results import raise_for
from app.collection.service import Collector, Opened
from app.config import Settings
from app.db import Database
from app.errors import (
    AppError,
    IdempotencyKeyReused,
    QuoteNotFound,
    QuoteStale,
)
from app.idempotency import IdempotentRequest, Once, StoredResponse
from app.ids import new_id
from app.ledger import invoices
from app.ledger import repository as ledger
from app.ledger.schemas import InvoiceLineOut, InvoiceOut
from app.seats import repository as seats
from app.seats import rules
from app.seats.schemas import PurchaseIn, PurchaseOut
from app.seats.service import load, load_as, plan_state, price_purchase, summary


@dataclass(frozen=True, slots=True)
class Purchases:
    """What a purchase needs besides the request."""

    db: Database
    collector: Collector
    clock: Clock
    settings: Settings


async def purchase(deps: Purchases, caller: Caller, once: Once, body: PurchaseIn) -> StoredResponse:
    """Raise the plan to ``body.seats``, charging the prorated price now (R6)."""
    caller.require_primary_admin()
    req = once.require_key()  # after the role: a caller who may not buy learns that first

    async def work() -> StoredResponse:
        async with deps.db.transaction() as session:
            prepared = await _prepare(session, deps, caller, req, body)
        collected = await deps.collector.finish(prepared.opened, caller.actor)
        raise_for(collected)
        return await _paid(deps, caller, collected.invoice, prepared.lines, prepared.number)

    return await once.execute(work)


@dataclass(frozen=True, slots=True)
class _Prepared:
    opened: Opened
    lines: list[InvoiceLineOut] | None  # as written now; None for an invoice of an earlier try
    number: str | None = None  # as written now; None for an invoice of an earlier try


async def _paid(
    deps: Purchases,
    caller: Caller,
    invoice: InvoiceState,
    lines: list[InvoiceLineOut] | None = None,
    number: str | None = None,
) -> StoredResponse:
    """The purchase's answer, from its paid invoice as it stands (the same for every retry)."""
    # Reads only, each one statement: outside a transaction on PostgreSQL. The invoice is as
    # its settlement left it; its lines never change once written (R11).
    async with deps.db.read() as session:
        now = await deps.clock.now(session)
        plan, account = await load(session, caller.account_id, lock=False)
        if lines is None or number is None:
            written = await ledger.get_invoice(session, invoice.id)
            assert written is not None
            lines = [InvoiceLineOut.model_validate(line) for line in written.lines]
            number = written.number
        body = PurchaseOut(
            summary=await summary(session, plan, account, deps.settings, now, caller),
            invoice=_invoice_out(invoice, lines, number),
        )
    return StoredResponse(201, jsonable_encoder(body))


def _invoice_out(invoice: InvoiceState, lines: list[InvoiceLineOut], number: str) -> InvoiceOut:
    shown = {"lines", "number"}
    fields = {name: getattr(invoice, name) for name in InvoiceOut.model_fields if name not in shown}
    return InvoiceOut(**fields, lines=lines, number=number)


async def _prepare(
    session: AsyncSession,
    deps: Purchases,
    caller: Caller,
    req: IdempotentRequest,
    body: PurchaseIn,
) -> _Prepared:
    """Step 1: the pending invoice of this request, opened now or found from an earlier try;
    a new one with its first attempt claimed (committed together, §6)."""
    now = await deps.clock.now(session)
    plan, account, caller = await load_as(session, caller)
    # Judged again under the lock (R17), even for a retry: a demoted admin's purchase that
    # is still pending is completed by the billing run or the new primary admin's /pay.
    caller.require_primary_admin()
    try:
        state = plan_state(plan).at(now)
        rules.check_purchase(state, body.seats)
        today = now.date()
        change = price_purchase(state, account, body.seats, today, deps.settings)
        if body.quote_id is not None:
            await _check_quote(session, caller, body, state.seats, change, account.currency, now)
    except AppError:
        # A retry of a purchase that went through (its seats are raised) or still waits for
        # its charge (a purchase is in progress) breaks the rules now: it gets its own answer.
        earlier = await _earlier(session, req)
        if earlier is None:
            raise
        return earlier
    days = change.proration
    number = await ledger.take_number(session, caller.account_id, deps.settings.invoice_prefix)
    new = invoices.purchase(
        id=new_id("inv"),
        number=number,
        account_id=caller.account_id,
        currency=account.currency,
        payment_method=account.payment_method,
        seats_before=state.seats,
        seats_after=body.seats,
        charged_seats=change.charged_seats,
        unit_price=change.unit_price,
        cycle=change.billing_cycle,
        period=change.period,
        today=today,
        days=days.days_remaining,
        days_in_period=days.days_in_period,
        amount=change.due_now,
        created_by=caller.actor,
        created_at=now,
        request_key=req.scope_hash,
        request_fingerprint=req.fingerprint,
    )
    invoice, [line] = new.invoice, new.lines
    # Where a retry's invoice is found when the rules still allow the purchase (its charge
    # was declined, say): opening reports it instead of a read before every purchase.
    opened = await deps.collector.open(session, invoice, line, caller.actor, now)
    if opened is None:
        await ledger.give_back_number(session, caller.account_id, number)
        earlier = await _earlier(session, req)
        assert earlier is not None
        return earlier
    return _Prepared(opened, new.lines_out(), number.number)


async def _earlier(session: AsyncSession, req: IdempotentRequest) -> _Prepared | None:
    """The invoice an earlier try of this request made (its charge timed out, its process
    died, or it completed since): carried on with, hence under the same gateway key."""
    earlier = await ledger.invoice_for_request(session, req.scope_hash)
    if earlier is None:
        return None
    if earlier.request_fingerprint not in (None, req.fingerprint):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request body or path."
        )
    return _Prepared(Opened(earlier.id), None)


async def _check_quote(
    session: AsyncSession,
    caller: Caller,
    body: PurchaseIn,
    current_seats: int,
    change: PriceChange,
    currency: str,
    now: datetime,
) -> None:
    """A confirmed quote must still say what the purchase will charge (``409 quote_stale``)."""
    assert body.quote_id is not None
    quote = await seats.get_quote(session, caller.account_id, body.quote_id)
    if quote is None:
        raise QuoteNotFound(f"No quote {body.quote_id!r} for this account.")
    quoted = (
        quote.seats,
        quote.current_seats,
        quote.unit_price,
        quote.currency,
        quote.billing_cycle,
        quote.period_start,
        quote.period_end,
        quote.due_now,
    )
    now_priced = (
        body.seats,
        current_seats,
        change.unit_price,
        currency,
        change.billing_cycle.value,
        change.period.start,
        change.period.end,
        change.due_now,
    )
    if now >= quote.expires_at or quoted != now_priced:
        raise QuoteStale("The quote expired or no longer matches: ask for a new quote.")
