"""``seats billing run``: everything that is due, in a fixed order of jobs (SPEC §7, R9, R14).

1. trial expiries, 2. pending purchases (collected, or voided after
``SEATS_PENDING_PURCHASE_HOURS``), 3. renewals to invoice, 4. charges to collect,
5. dunning, 6. clean-up.

Every job streams its candidates in batches (keyset order, no cap) and handles each item in
short transactions of its own; no transaction is ever held across a gateway call. Jobs that
only write (1, 3, 5) claim a batch of plans with ``FOR UPDATE SKIP LOCKED``: several runs at
once, on one host or many, take disjoint batches. Jobs that call the gateway (2, 4) go through
``app.collection``, whose committed attempt row is the claim: a second run finds the call in
flight and moves on, so no gateway key is ever sent from two places at once. Up to
``SEATS_BILLING_CONCURRENCY`` calls are in flight at once. A failing item is counted and named
in the report and never stops the others. On SQLite there is one writer: runs serialize on it
and stay correct.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing_run import plans
from app.clock import Clock
from app.collection.policy import Mode, Wait, first_decline_at, in_flight
from app.collection.service import Collected, Collector, history
from app.config import Settings
from app.db import Database
from app.directory import repository as directory
from app.errors import AppError
from app.idempotency import IdempotencyStore
from app.ledger import repository as ledger
from app.ledger.models import AttemptOutcome, Invoice, InvoiceKind, InvoiceStatus
from app.seats.models import Plan, Quote
from app.seats.service import unit_price
from app.seats.status import PlanStatus

log = logging.getLogger(__name__)

PROGRESS_EVERY = 500


@dataclass
class RunReport:
    """What one run did, and what needs an operator (``errors``, ``charges_unavailable``)."""

    trials_expired: int = 0
    renewals_invoiced: int = 0
    renewals_paid: int = 0
    renewals_declined: int = 0
    purchases_completed: int = 0
    purchases_failed: int = 0
    purchases_voided: int = 0
    plans_canceled: int = 0
    charges_unavailable: int = 0
    charges_in_flight_elsewhere: int = 0
    idempotency_keys_purged: int = 0
    quotes_purged: int = 0
    items: int = 0
    errors: list[str] = field(default_factory=list)
    needs_operator: bool = False  # set at the end: anything a person must look at

    def close(self) -> RunReport:
        """Decide ``needs_operator`` (the CLI then exits 1); the report is final."""
        self.needs_operator = bool(self.errors) or self.charges_unavailable > 0
        return self


@dataclass(frozen=True, slots=True)
class BillingRun:
    """What a run needs."""

    db: Database
    collector: Collector
    idempotency: IdempotencyStore
    clock: Clock
    settings: Settings


async def run_billing(deps: BillingRun) -> RunReport:
    """Process everything that is due now. Returns counts of what was done."""
    report = RunReport()
    async with deps.db.transaction() as session:
        now = await deps.clock.now(session)
    await _expire_trials(deps, now, report)
    await _pending_purchases(deps, now, report)
    await _invoice_renewals(deps, now, report)
    await _collect_renewals(deps, report)
    await _dun(deps, now, report)
    async with deps.db.transaction() as session:
        report.idempotency_keys_purged = await deps.idempotency.purge_expired(session)
        report.quotes_purged = await _purge_quotes(session, now)
    log.info("billing run done: %s", report.close())
    return report


# --- jobs that only write: batches of plans claimed with SKIP LOCKED ------------------------


async def _claimed_plans(
    deps: BillingRun,
    where: list[Any],
    work: Callable[[AsyncSession, Plan], Awaitable[None]],
    report: RunReport,
    job: str,
) -> None:
    """Run ``work`` on every plan matching ``where``: a batch claimed per transaction.

    Plans another run holds are skipped (that run does them); each plan's work runs in a
    savepoint, so a failing one is rolled back, named in the report, and the rest go on.
    """
    size = deps.settings.billing_batch_size
    after = ""
    while True:
        async with deps.db.transaction() as session:
            batch = list(
                await session.scalars(
                    select(Plan)
                    .where(*where, Plan.account_id > after)
                    .order_by(Plan.account_id)
                    .limit(size)
                    .with_for_update(skip_locked=True)
                )
            )
            ids = [plan.account_id for plan in batch]
            for account_id, plan in zip(ids, batch, strict=True):
                try:
                    async with session.begin_nested():
                        await work(session, plan)
                except Exception as exc:
                    _failed(report, job, account_id, exc)
                _progress(report, job)
        if len(ids) < size:
            return
        after = ids[-1]


async def _expire_trials(deps: BillingRun, now: datetime, report: RunReport) -> None:
    async def work(session: AsyncSession, plan: Plan) -> None:
        report.trials_expired += await plans.expire_trial(session, plan, now)

    where = [Plan.status == PlanStatus.TRIALING, Plan.trial_ends_at <= now]
    await _claimed_plans(deps, where, work, report, "expire trials")


async def _invoice_renewals(deps: BillingRun, now: datetime, report: RunReport) -> None:
    async def work(session: AsyncSession, plan: Plan) -> None:
        account = await directory.get_account(session, plan.account_id)
        assert account is not None
        price = unit_price(deps.settings, account.currency)
        # Catch up one period at a time, each its own invoice (bounded: a plan is never
        # more than a few periods behind, but a bug must not loop forever).
        for _ in range(120):
            made = await plans.invoice_renewal(session, plan, account, now, price)
            if made is None:
                return
            report.renewals_invoiced += 1 if made else 0

    where = [
        Plan.status.in_([PlanStatus.ACTIVE, PlanStatus.PAST_DUE]),
        Plan.period_end <= now.date(),
        Plan.pending_invoice_id.is_(None),
    ]
    await _claimed_plans(deps, where, work, report, "invoice renewals")


async def _dun(deps: BillingRun, now: datetime, report: RunReport) -> None:
    window = timedelta(days=deps.settings.dunning_days)
    lease = timedelta(seconds=deps.settings.collection_lease_seconds)

    async def work(session: AsyncSession, plan: Plan) -> None:
        outstanding = await ledger.pending_renewals(session, plan.account_id)
        if not outstanding:
            return
        tried = await history(session, outstanding[0].id)
        first = first_decline_at(tried)
        if first is None or now - first < window:
            return
        for invoice in outstanding:
            if in_flight(await history(session, invoice.id), datetime_now(), lease):
                return  # a charge may still succeed: decide on the next run
        await plans.cancel(session, plan, outstanding, now)
        report.plans_canceled += 1

    await _claimed_plans(deps, [Plan.status == PlanStatus.PAST_DUE], work, report, "dunning")


# --- jobs that call the gateway: through collection, with bounded concurrency --------------


async def _pending_invoices(deps: BillingRun, kind: InvoiceKind) -> AsyncIterator[Invoice]:
    """Every pending invoice of ``kind``, streamed in keyset batches."""
    after = ""
    while True:
        async with deps.db.transaction() as session:
            batch = list(
                await session.scalars(
                    select(Invoice)
                    .where(
                        Invoice.status == InvoiceStatus.PENDING,
                        Invoice.kind == kind,
                        Invoice.id > after,
                    )
                    .order_by(Invoice.id)
                    .limit(deps.settings.billing_batch_size)
                )
            )
        for invoice in batch:
            yield invoice
        if len(batch) < deps.settings.billing_batch_size:
            return
        after = batch[-1].id


async def _in_pool(
    deps: BillingRun,
    items: AsyncIterator[Invoice],
    handle: Callable[[Invoice], Awaitable[None]],
    report: RunReport,
    job: str,
) -> None:
    """``handle`` every item, at most ``billing_concurrency`` at once, each isolated."""
    limit = asyncio.Semaphore(deps.settings.billing_concurrency)

    async def one(invoice: Invoice) -> None:
        try:
            await handle(invoice)
        except Exception as exc:
            _failed(report, job, invoice.id, exc)
        finally:
            limit.release()
            _progress(report, job)

    async with asyncio.TaskGroup() as tasks:
        async for invoice in items:
            await limit.acquire()
            tasks.create_task(one(invoice))


async def _pending_purchases(deps: BillingRun, now: datetime, report: RunReport) -> None:
    give_up = timedelta(hours=deps.settings.pending_purchase_hours)

    async def handle(invoice: Invoice) -> None:
        if now - invoice.created_at >= give_up:
            done = await deps.collector.void(invoice.id, plans.SYSTEM)
            if done.invoice.status is InvoiceStatus.VOID:
                report.purchases_voided += 1
            elif done.wait is Wait.IN_FLIGHT:
                report.charges_in_flight_elsewhere += 1
            elif done.invoice.status is InvoiceStatus.PENDING:
                log.error("void of %s unconfirmed: %s", invoice.id, done.reason or "no answer")
                report.errors.append(f"{invoice.id}: void_unconfirmed")
            return
        _count_purchase(report, await deps.collector.collect(invoice.id, plans.SYSTEM, Mode.RUN))

    await _in_pool(
        deps, _pending_invoices(deps, InvoiceKind.PURCHASE), handle, report, "pending purchases"
    )


def _count_purchase(report: RunReport, done: Collected) -> None:
    if done.invoice.status is InvoiceStatus.PAID and done.outcome is not None:
        report.purchases_completed += 1
    elif done.invoice.status is InvoiceStatus.FAILED and done.outcome is not None:
        report.purchases_failed += 1
    else:
        _count_unsettled(report, done)


def _count_unsettled(report: RunReport, done: Collected) -> None:
    if done.wait is Wait.IN_FLIGHT:
        report.charges_in_flight_elsewhere += 1
    elif done.outcome is AttemptOutcome.UNAVAILABLE:
        report.charges_unavailable += 1
    elif done.outcome is AttemptOutcome.REJECTED:
        report.errors.append(f"{done.invoice.id}: payment_unavailable")


async def _collect_renewals(deps: BillingRun, report: RunReport) -> None:
    async def handle(invoice: Invoice) -> None:
        done = await deps.collector.collect(invoice.id, plans.SYSTEM, Mode.RUN)
        if done.outcome is AttemptOutcome.SUCCEEDED:
            report.renewals_paid += 1
        elif done.outcome is AttemptOutcome.DECLINED:
            report.renewals_declined += 1
        else:
            _count_unsettled(report, done)

    await _in_pool(
        deps, _pending_invoices(deps, InvoiceKind.RENEWAL), handle, report, "collect renewals"
    )


# --- bookkeeping ----------------------------------------------------------------------------


def _failed(report: RunReport, job: str, item: str, exc: Exception) -> None:
    code = exc.code if isinstance(exc, AppError) else type(exc).__name__
    if not isinstance(exc, AppError):
        log.error("%s: %s failed", job, item, exc_info=exc)
    report.errors.append(f"{item}: {code}")


def _progress(report: RunReport, job: str) -> None:
    report.items += 1
    if report.items % PROGRESS_EVERY == 0:
        log.info("billing run: %d items so far (now: %s)", report.items, job)


def datetime_now() -> datetime:
    """Wall-clock time, for leases (processes), never for billing."""
    return datetime.now(UTC)


async def _purge_quotes(session: AsyncSession, now: datetime) -> int:
    """Quotes are only useful until they expire; keep a day for support questions."""
    result = await session.execute(delete(Quote).where(Quote.expires_at < now - timedelta(days=1)))
    return int(getattr(result, "rowcount", 0) or 0)
