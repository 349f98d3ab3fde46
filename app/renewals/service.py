"""Billing over time: trial expiry, renewals, past due and recovery (SPEC R9, R10, §6).

``run_billing`` is safe to call as often as you like, from several hosts at once:

* every state change happens under the plan's row lock and re-checks its condition there;
* a renewal per (account, period) is guaranteed by a unique index, so a second run that
  tries to renew the same period fails to insert and moves on;
* charges reuse the gateway key of an attempt whose outcome is unknown, so a retry never
  charges twice.

Retry policy for renewals: a declined renewal leaves its invoice ``pending`` and the plan
``past_due`` (agents keep access). The billing run charges it again once
``renewal_retry_hours`` have passed since the last decline, at most ``renewal_max_attempts``
times in all; after that only ``POST .../invoices/{id}/pay`` retries it. An attempt that found
the gateway unavailable is retried on the next run, with the same key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.periods import BillingCycle, Period, next_period
from app.billing.pricing import cycle_total
from app.directory import repository as directory
from app.errors import AppError, PaymentPending
from app.ids import new_id
from app.ledger import repository as ledger
from app.ledger.models import (
    ChargeAttempt,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
)
from app.payments.gateway import ChargeDeclined, ChargeResult, ChargeSucceeded
from app.seats import purchase as purchases
from app.seats.models import Plan, PlanStatus, Quote
from app.seats.service import load, touch

log = logging.getLogger(__name__)

SYSTEM = "system:billing"


@dataclass
class RunReport:
    trials_expired: int = 0
    renewals_invoiced: int = 0
    renewals_paid: int = 0
    renewals_declined: int = 0
    purchases_completed: int = 0
    purchases_failed: int = 0
    charges_unavailable: int = 0
    idempotency_keys_purged: int = 0
    quotes_purged: int = 0
    errors: list[str] = field(default_factory=list)


async def run_billing(deps: purchases.Payments, *, max_periods: int = 120) -> RunReport:
    """Process everything that is due now. Returns counts of what was done."""
    report = RunReport()
    async with deps.db.transaction() as session:
        now = await deps.clock.now(session)
        expiring = list(
            await session.scalars(
                select(Plan.account_id).where(
                    Plan.status == PlanStatus.TRIALING, Plan.trial_ends_at <= now
                )
            )
        )
    for account_id in expiring:
        async with deps.db.transaction() as session:
            report.trials_expired += await expire_trial(session, account_id, now)

    # Pending purchases first: a renewal waits for them (see ``invoice_renewal``).
    await _collect_pending(deps, now, report, InvoiceKind.PURCHASE)

    async with deps.db.transaction() as session:
        due = list(
            await session.scalars(
                select(Plan.account_id).where(
                    Plan.status.in_([PlanStatus.ACTIVE, PlanStatus.PAST_DUE]),
                    Plan.period_end <= now.date(),
                )
            )
        )
    for account_id in due:
        for _ in range(max_periods):  # catch up one period at a time, each its own invoice
            try:
                async with deps.db.transaction() as session:
                    invoiced = await invoice_renewal(
                        session, account_id, now, deps.settings.price_monthly
                    )
            except IntegrityError:
                invoiced = None  # another run renewed this period first
            if invoiced is None:
                break
            report.renewals_invoiced += 1 if invoiced else 0

    await _collect_pending(deps, now, report, InvoiceKind.RENEWAL)

    async with deps.db.transaction() as session:
        report.idempotency_keys_purged = await deps.idempotency.purge_expired(session)
        report.quotes_purged = await purge_quotes(session, now)
    return report


async def _collect_pending(
    deps: purchases.Payments, now: datetime, report: RunReport, kind: InvoiceKind
) -> None:
    async with deps.db.transaction() as session:
        pending = await ledger.pending_invoices(session, limit=1000)
    for invoice in pending:
        if invoice.kind is not kind:
            continue
        try:
            await _collect(deps, invoice, now, report)
        except AppError as exc:
            report.errors.append(f"{invoice.id}: {exc.code}")


async def expire_trial(session: AsyncSession, account_id: str, now: datetime) -> int:
    """R10: an ended trial becomes ``trial_expired`` with 0 seats; assignments are kept."""
    plan, _ = await load(session, account_id, lock=True)
    if plan.status != PlanStatus.TRIALING or plan.trial_ends_at is None or plan.trial_ends_at > now:
        return 0
    before = plan.seats
    plan.status = PlanStatus.TRIAL_EXPIRED
    plan.seats = 0
    touch(plan, now)
    await ledger.add_event(
        session,
        account_id=account_id,
        type="trial.expired",
        actor=SYSTEM,
        at=now,
        data={"seats_before": before, "seats_after": 0, "assigned": plan.assigned},
    )
    return 1


async def invoice_renewal(
    session: AsyncSession, account_id: str, now: datetime, unit_price: int
) -> bool | None:
    """R9: move a plan whose period ended into the next period, invoicing it.

    Returns None when nothing is due, True when an invoice was made, False for a period of 0
    seats (moved on, nothing to charge).
    """
    plan, account = await load(session, account_id, lock=True)
    if not plan.status.is_paid or plan.period_start is None or plan.period_end is None:
        return None
    if plan.period_end > now.date():
        return None
    if plan.pending_invoice_id is not None:
        # A purchase waits for its charge and will change the seat total: renewing first
        # would bill the next period for the old total and leave the added seats unbilled.
        # The run renews once the purchase is settled.
        return None
    cycle = BillingCycle(account.billing_cycle)
    period = next_period(account.billing_anchor, cycle, Period(plan.period_start, plan.period_end))
    plan.period_start, plan.period_end = period.start, period.end
    touch(plan, now)
    total = cycle_total(plan.seats, unit_price, cycle)
    data: dict[str, object] = {
        "seats": plan.seats,
        "period_start": period.start,
        "period_end": period.end,
    }
    if plan.seats == 0:
        await ledger.add_event(
            session, account_id=account_id, type="plan.renewed", actor=SYSTEM, at=now, data=data
        )
        return False
    invoice = Invoice(
        id=new_id("inv"),
        account_id=account_id,
        kind=InvoiceKind.RENEWAL,
        status=InvoiceStatus.PENDING,
        currency=account.currency,
        total=total,
        seats=plan.seats,
        period_start=period.start,
        period_end=period.end,
        payment_method=account.payment_method,
        created_by=SYSTEM,
        created_at=now,
    )
    invoice.lines = [
        InvoiceLine(
            position=0,
            description=(
                f"{plan.seats} Conversations seat(s), {cycle.value}, {period.start} to {period.end}"
            ),
            quantity=plan.seats,
            unit_price=unit_price * cycle.months,
            amount=total,
            period_start=period.start,
            period_end=period.end,
        )
    ]
    session.add(invoice)
    await session.flush()  # the unique (account, period) index speaks here
    data["invoice_id"] = invoice.id
    await ledger.add_event(
        session, account_id=account_id, type="plan.renewed", actor=SYSTEM, at=now, data=data
    )
    return True


async def _collect(
    deps: purchases.Payments, invoice: Invoice, now: datetime, report: RunReport
) -> None:
    if invoice.kind is InvoiceKind.PURCHASE:
        try:
            outcome = await purchases.charge(deps.gateway, invoice)
        except PaymentPending:
            report.charges_unavailable += 1
            return
        async with deps.db.transaction() as session:
            settled = await purchases.settle(session, invoice.id, outcome, deps.clock, SYSTEM)
        if settled.status is InvoiceStatus.PAID:
            report.purchases_completed += 1
        elif settled.status is InvoiceStatus.FAILED:
            report.purchases_failed += 1
        return
    hours, most = deps.settings.renewal_retry_hours, deps.settings.renewal_max_attempts
    try:
        result = await charge_renewal(
            deps, invoice, SYSTEM, due=lambda tries: _retry_due(tries, now, hours, most)
        )
    except _NotDue:
        return
    if result is None:
        report.charges_unavailable += 1
    elif isinstance(result, ChargeSucceeded):
        report.renewals_paid += 1
    else:
        report.renewals_declined += 1


def _retry_due(tries: list[ChargeAttempt], now: datetime, hours: int, max_attempts: int) -> bool:
    declines = [t for t in tries if t.outcome == "declined"]
    if not tries or tries[-1].outcome == "unavailable":
        return True
    if not declines:
        return False  # it succeeded: settled since this run listed it (another run or /pay)
    if len(declines) >= max_attempts:
        return False
    return now - declines[-1].at >= timedelta(hours=hours)


class _NotDue(Exception):
    """The retry policy says not now."""


async def charge_renewal(
    deps: purchases.Payments,
    invoice: Invoice,
    actor: str,
    *,
    due: Callable[[list[ChargeAttempt]], bool] | None = None,
) -> ChargeResult | None:
    """Charge a pending renewal once; record the attempt and settle. None if unavailable.

    A new gateway key charges the account's payment method of now, not the one the invoice
    was made with (kept on the append-only invoice as history): a customer who replaces a
    declined card must be able to pay. ``due`` (the run's retry policy) is asked about the
    same attempts the key is derived from, else a concurrent run's fresh decline would be
    retried at once under the next key; it raises ``_NotDue`` when it says no.
    """
    async with deps.db.transaction() as session:
        tries = await ledger.attempts(session, invoice.id)
        account = await directory.get_account(session, invoice.account_id)
    if due is not None and not due(tries):
        raise _NotDue
    number = len(tries) + 1
    method = account.payment_method if account is not None else invoice.payment_method
    if tries and tries[-1].outcome == "unavailable":
        key = tries[-1].gateway_key  # the outcome is unknown: ask again under the same key
        # ... with the same request: a different card under that key could be refused as a
        # reused key and then charged again under a new one.
        method = tries[-1].payment_method
    else:
        declines = sum(1 for t in tries if t.outcome == "declined")
        key = invoice.id if declines == 0 else f"{invoice.id}-{declines}"
    try:
        outcome = await purchases.charge(deps.gateway, invoice, key=key, payment_method=method)
    except PaymentPending:
        outcome = None
    try:
        async with deps.db.transaction() as session:
            now = await deps.clock.now(session)
            if outcome is None:
                await _record(session, invoice.id, number, key, method, "unavailable", None, now)
                return None
            await settle_renewal(session, invoice.id, outcome, now, actor, (number, key, method))
    except IntegrityError:
        # A concurrent run recorded this attempt number first; it asked the gateway under
        # the same key, so its record stands for ours.
        log.info("attempt %s of %s was recorded by a concurrent run", number, invoice.id)
    return outcome


async def _record(
    session: AsyncSession,
    invoice_id: str,
    number: int,
    key: str,
    method: str,
    outcome: str,
    reason: str | None,
    now: datetime,
) -> None:
    session.add(
        ChargeAttempt(
            invoice_id=invoice_id,
            number=number,
            gateway_key=key,
            payment_method=method,
            outcome=outcome,
            reason=reason,
            at=now,
        )
    )
    await session.flush()


async def settle_renewal(
    session: AsyncSession,
    invoice_id: str,
    outcome: ChargeResult,
    now: datetime,
    actor: str,
    attempt: tuple[int, str, str],
) -> Invoice:
    """Apply a renewal charge's outcome: paid (and active again if nothing else is owed), or
    past due. ``attempt`` is (number, gateway key, payment method) of the charge."""
    number, key, method = attempt
    invoice = await ledger.get_invoice(session, invoice_id)
    assert invoice is not None
    plan, _ = await load(session, invoice.account_id, lock=True)
    await session.refresh(invoice)
    if invoice.status is not InvoiceStatus.PENDING:
        return invoice
    if isinstance(outcome, ChargeDeclined):
        await _record(
            session, invoice.id, number, key, method, "declined", outcome.reason[:200], now
        )
        if plan.status != PlanStatus.PAST_DUE:
            plan.status = PlanStatus.PAST_DUE
            touch(plan, now)
            await ledger.add_event(
                session,
                account_id=invoice.account_id,
                type="plan.past_due",
                actor=actor,
                at=now,
                data={"invoice_id": invoice.id, "reason": outcome.reason},
            )
        return invoice
    await _record(session, invoice.id, number, key, method, "succeeded", None, now)
    invoice.status = InvoiceStatus.PAID
    invoice.paid_at = now
    invoice.charge_id = outcome.charge_id or None
    await session.flush()
    if plan.status == PlanStatus.PAST_DUE and not await _owes_renewals(session, plan.account_id):
        plan.status = PlanStatus.ACTIVE
        touch(plan, now)
        await ledger.add_event(
            session,
            account_id=invoice.account_id,
            type="plan.recovered",
            actor=actor,
            at=now,
            data={"invoice_id": invoice.id},
        )
    return invoice


async def _owes_renewals(session: AsyncSession, account_id: str) -> bool:
    found = await session.scalar(
        select(Invoice.id)
        .where(
            Invoice.account_id == account_id,
            Invoice.kind == InvoiceKind.RENEWAL,
            Invoice.status == InvoiceStatus.PENDING,
        )
        .limit(1)
    )
    return found is not None


async def purge_quotes(session: AsyncSession, now: datetime) -> int:
    """Quotes are only useful until they expire; keep a day for support questions."""
    from sqlalchemy import delete

    result = await session.execute(delete(Quote).where(Quote.expires_at < now - timedelta(days=1)))
    return int(getattr(result, "rowcount", 0) or 0)
