"""``seats billing run``: everything that is due, in a fixed order of jobs (SPEC §7, R9, R14).

1. trial expiries, 2. pending purchases (collected, or voided after
``SEATS_PENDING_PURCHASE_HOURS``), 3. renewals to invoice, 4. charges to collect,
5. dunning, 6. reminders (R16), 7. clean-up.

Every job streams its candidates in batches (keyset order, no cap) and handles each item in
short transactions of its own; no transaction is ever held across a gateway call. Jobs that
only write (1, 3, 5, 6) claim a batch of plans with ``FOR UPDATE SKIP LOCKED``: several runs at
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

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing_run import plans, reminders
from app.billing_run import repository as billing
from app.clock import Clock
from app.collection import repository as collection
from app.collection.policy import Mode, Wait, first_decline_at, in_flight
from app.collection.service import Answer, Claim, Collected, Collector
from app.config import Settings
from app.db import Database
from app.directory.models import Account
from app.errors import AppError
from app.idempotency import IdempotencyStore
from app.ledger import repository as ledger
from app.ledger.models import AttemptOutcome, InvoiceKind, InvoiceStatus
from app.seats.models import Plan, Quote
from app.seats.service import unit_price
from app.seats.status import PlanStatus

log = logging.getLogger(__name__)

Pending = tuple[str, datetime]  # a pending invoice: id, created_at

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
    trial_reminders_sent: int = 0
    renewal_reminders_sent: int = 0
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
    await _remind(deps, now, report)
    async with deps.db.transaction() as session:
        report.idempotency_keys_purged = await deps.idempotency.purge_expired(session)
        report.quotes_purged = await _purge_quotes(session, now)
    log.info("billing run done: %s", report.close())
    return report


# --- jobs that only write: batches of plans claimed with SKIP LOCKED ------------------------


async def _claimed_plans(
    deps: BillingRun,
    where: list[Any],
    work: Callable[[AsyncSession, Plan], Awaitable[int]],
    add: Callable[[int], None],
    report: RunReport,
    job: str,
    *,
    prepare: Callable[[AsyncSession, list[str]], Awaitable[None]] | None = None,
    together: bool = False,
    failed: Callable[[AsyncSession, str, Exception], Awaitable[None]] | None = None,
) -> None:
    """Run ``work`` on every plan matching ``where``: a batch claimed per transaction;
    ``add`` gets what each plan's work counted, once it is kept.

    Plans another run holds are skipped (that run does them). With ``together`` a batch's
    work is written in one flush (multi-row inserts) in one savepoint; if that fails, and
    otherwise always, each plan's work runs in a savepoint of its own, so a failing one is
    rolled back, named in the report, and the rest go on; ``failed`` then records what a
    failure means for that plan, in a savepoint of its own too.
    """
    size = deps.settings.billing_batch_size
    after = ""
    while True:
        async with deps.db.transaction() as session:
            batch = await billing.claim_plans(session, where, after, size)
            ids = [plan.account_id for plan in batch]
            if prepare is not None:
                await prepare(session, ids)
            if together and batch:
                try:
                    async with session.begin_nested():
                        counts = [await work(session, plan) for plan in batch]
                        await session.flush()
                except Exception as exc:
                    log.warning("%s: a batch of %d failed (%s): one at a time", job, len(ids), exc)
                    batch = await billing.reload_plans(session, ids)
                else:
                    for n in counts:
                        add(n)
                        _progress(report, job)
                    batch = []
            for account_id, plan in zip(ids, batch, strict=False):
                try:
                    async with session.begin_nested():
                        n = await work(session, plan)
                except Exception as exc:
                    _failed(report, job, account_id, exc)
                    if failed is not None:
                        await _after_failure(session, failed, account_id, exc, report, job)
                else:
                    add(n)
                _progress(report, job)
        if len(ids) < size:
            return
        after = ids[-1]


async def _after_failure(
    session: AsyncSession,
    failed: Callable[[AsyncSession, str, Exception], Awaitable[None]],
    account_id: str,
    exc: Exception,
    report: RunReport,
    job: str,
) -> None:
    try:
        async with session.begin_nested():
            await failed(session, account_id, exc)
    except Exception as again:
        _failed(report, f"{job} (after a failure)", account_id, again)


async def _expire_trials(deps: BillingRun, now: datetime, report: RunReport) -> None:
    async def work(session: AsyncSession, plan: Plan) -> int:
        return int(await plans.expire_trial(session, plan, now))

    def add(n: int) -> None:
        report.trials_expired += n

    where = [Plan.status == PlanStatus.TRIALING, Plan.trial_ends_at <= now]
    await _claimed_plans(deps, where, work, add, report, "expire trials")


async def _invoice_renewals(deps: BillingRun, now: datetime, report: RunReport) -> None:
    accounts: dict[str, Account] = {}

    async def prepare(session: AsyncSession, ids: list[str]) -> None:
        accounts.clear()
        accounts.update(await billing.accounts(session, ids))

    async def work(session: AsyncSession, plan: Plan) -> int:
        account = accounts[plan.account_id]
        price = unit_price(deps.settings, account.currency)
        made = 0
        # Catch up one period at a time, each its own invoice (bounded: a plan is never
        # more than a few periods behind, but a bug must not loop forever).
        for _ in range(120):
            renewed = await plans.invoice_renewal(
                session, plan, account, now, price, deps.settings.invoice_prefix
            )
            if renewed is None:
                return made
            made += 1 if renewed else 0
        return made

    def add(n: int) -> None:
        report.renewals_invoiced += n

    async def not_invoiced(session: AsyncSession, account_id: str, exc: Exception) -> None:
        # R18: reported above as needing an operator, and past due meanwhile: a plan that
        # cannot renew must not keep its seats for free.
        (plan,) = await billing.reload_plans(session, [account_id])
        if await plans.renewal_not_invoiced(session, plan, now, _code(exc)):
            await session.flush()

    where = [
        Plan.status.in_([PlanStatus.ACTIVE, PlanStatus.PAST_DUE]),
        Plan.period_end <= now.date(),
        Plan.pending_invoice_id.is_(None),
    ]
    await _claimed_plans(
        deps,
        where,
        work,
        add,
        report,
        "invoice renewals",
        prepare=prepare,
        together=True,
        failed=not_invoiced,
    )


async def _dun(deps: BillingRun, now: datetime, report: RunReport) -> None:
    window = timedelta(days=deps.settings.dunning_days)
    lease = timedelta(seconds=deps.settings.collection_lease_seconds)

    async def work(session: AsyncSession, plan: Plan) -> int:
        outstanding = await ledger.pending_renewals(session, plan.account_id)
        tried = await collection.invoices_with_attempts(session, [i.id for i in outstanding])
        # Past due since the oldest renewal's first decline (R9), or since the end of a
        # period whose renewal could not be invoiced (R18), whichever came first.
        since = [
            at
            for at in (
                first_decline_at(tried[outstanding[0].id][1]) if outstanding else None,
                plans.unrenewed_since(plan, now),
            )
            if at is not None
        ]
        if not since or now - min(since) < window:
            return 0
        for invoice in outstanding:
            if in_flight(tried[invoice.id][1], datetime_now(), lease):
                return 0  # a charge may still succeed: decide on the next run
        await plans.cancel(session, plan, outstanding, now)
        return 1

    def add(n: int) -> None:
        report.plans_canceled += n

    where = [Plan.status == PlanStatus.PAST_DUE]
    await _claimed_plans(deps, where, work, add, report, "dunning")


async def _remind(deps: BillingRun, now: datetime, report: RunReport) -> None:
    """R16: ``trial.ending`` and ``renewal.upcoming``, once each (``reminders``)."""
    accounts: dict[str, Account] = {}

    async def trial(session: AsyncSession, plan: Plan) -> int:
        return int(await reminders.remind_trial_ending(session, plan, now))

    def add_trial(n: int) -> None:
        report.trial_reminders_sent += n

    async def prepare(session: AsyncSession, ids: list[str]) -> None:
        accounts.clear()
        accounts.update(await billing.accounts(session, ids))

    async def renewal(session: AsyncSession, plan: Plan) -> int:
        account = accounts[plan.account_id]
        return int(await reminders.remind_renewal(session, plan, account, now, deps.settings))

    def add_renewal(n: int) -> None:
        report.renewal_reminders_sent += n

    where = reminders.trials_to_remind(now)
    await _claimed_plans(deps, where, trial, add_trial, report, "trial reminders")
    where = reminders.renewals_to_remind(now)
    await _claimed_plans(
        deps, where, renewal, add_renewal, report, "renewal reminders", prepare=prepare
    )


# --- jobs that call the gateway: through collection, with bounded concurrency --------------


async def _pending_pages(deps: BillingRun, kind: InvoiceKind) -> AsyncIterator[list[Pending]]:
    """Every pending invoice of ``kind`` (id, created_at), streamed in keyset pages."""
    size = deps.settings.billing_batch_size
    after = ""
    while True:
        async with deps.db.transaction() as session:
            page = await collection.pending_invoice_ids(session, kind, after, size)
        if page:
            yield page
        if len(page) < size:
            return
        after = page[-1][0]


async def _in_pool(
    deps: BillingRun,
    pages: AsyncIterator[list[Pending]],
    handle: Callable[[Pending], Awaitable[None]],
    report: RunReport,
    job: str,
) -> None:
    """``handle`` every item, at most ``billing_concurrency`` at once, each isolated."""
    limit = asyncio.Semaphore(deps.settings.billing_concurrency)

    async def one(item: Pending) -> None:
        try:
            await handle(item)
        except Exception as exc:
            _failed(report, job, item[0], exc)
        finally:
            limit.release()
            _progress(report, job)

    async with asyncio.TaskGroup() as tasks:
        async for page in pages:
            for item in page:
                await limit.acquire()
                tasks.create_task(one(item))


async def _pending_purchases(deps: BillingRun, now: datetime, report: RunReport) -> None:
    give_up = timedelta(hours=deps.settings.pending_purchase_hours)

    async def handle(item: Pending) -> None:
        invoice_id, created_at = item
        if now - created_at >= give_up:
            done = await deps.collector.void(invoice_id, plans.SYSTEM)
            if done.invoice.status is InvoiceStatus.VOID:
                report.purchases_voided += 1
            elif done.wait is Wait.IN_FLIGHT:
                report.charges_in_flight_elsewhere += 1
            elif done.invoice.status is InvoiceStatus.PENDING:
                log.error("void of %s unconfirmed: %s", invoice_id, done.reason or "no answer")
                report.errors.append(f"{invoice_id}: void_unconfirmed")
            return
        _count_purchase(report, await deps.collector.collect(invoice_id, plans.SYSTEM, Mode.RUN))

    await _in_pool(
        deps, _pending_pages(deps, InvoiceKind.PURCHASE), handle, report, "pending purchases"
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
    """Charge every pending renewal: claims and records in batches, calls in a pool.

    The invoices are claimed a chunk at a time (one transaction, their plans locked with
    SKIP LOCKED: a chunk another run is claiming is left to it, and looked at again at the
    end in case it was a request that held a plan). Each claim's call goes out as soon as
    one of the ``billing_concurrency`` places is free; the answers are recorded by one
    recorder, as many as have arrived in one transaction. A chunk that raises is redone
    one invoice at a time, so a failing item is isolated and named, never the batch.
    """
    job = "collect renewals"
    collector = deps.collector
    limit = asyncio.Semaphore(deps.settings.billing_concurrency)
    # Claimed ahead of the calls: few enough that a run dying leaves little for the lease.
    chunk = 2 * deps.settings.billing_concurrency
    answers: asyncio.Queue[tuple[Claim, Answer] | None] = asyncio.Queue()
    calls: set[asyncio.Task[None]] = set()
    skipped: list[str] = []

    def count(done: Collected) -> None:
        if done.outcome is AttemptOutcome.SUCCEEDED:
            report.renewals_paid += 1
        elif done.outcome is AttemptOutcome.DECLINED:
            report.renewals_declined += 1
        else:
            _count_unsettled(report, done)
        _progress(report, job)

    async def record(batch: list[tuple[Claim, Answer]]) -> None:
        try:
            recorded = await collector.record(batch, plans.SYSTEM)
        except Exception as exc:
            if len(batch) == 1:
                _failed(report, job, batch[0][0].invoice.id, exc)
                _progress(report, job)
                return
            for one in batch:
                await record([one])
            return
        for done in recorded:
            count(done)

    async def recorder() -> None:
        while (first := await answers.get()) is not None:
            batch = [first]
            while not answers.empty() and len(batch) < chunk:
                nxt = answers.get_nowait()
                if nxt is None:
                    await record(batch)
                    return
                batch.append(nxt)
            await record(batch)

    async def call(claim: Claim) -> None:
        try:
            answer = await collector.send(claim)
        except Exception as exc:
            # Not an answer (a bug, not the gateway): the attempt stays open, and is sent
            # again under the same key once its lease has passed.
            _failed(report, job, claim.invoice.id, exc)
            _progress(report, job)
            return
        finally:
            limit.release()
        await answers.put((claim, answer))

    async def claim(ids: list[str], skip_locked: bool, tasks: asyncio.TaskGroup) -> None:
        try:
            claimed = await collector.claim(ids, plans.SYSTEM, Mode.RUN, skip_locked=skip_locked)
        except Exception as exc:
            if len(ids) > 1:
                for one in ids:
                    await claim([one], skip_locked, tasks)
                return
            _failed(report, job, ids[0], exc)
            _progress(report, job)
            return
        for done in claimed.done:
            count(done)
        skipped.extend(claimed.skipped)
        for each in claimed.claims:
            await limit.acquire()
            task = tasks.create_task(call(each))
            calls.add(task)
            task.add_done_callback(calls.discard)

    async with asyncio.TaskGroup() as tasks:
        recording = tasks.create_task(recorder())
        async for page in _pending_pages(deps, InvoiceKind.RENEWAL):
            ids = [invoice_id for invoice_id, _ in page]
            for i in range(0, len(ids), chunk):
                await claim(ids[i : i + chunk], True, tasks)
        again, skipped[:] = list(skipped), []
        for i in range(0, len(again), chunk):
            await claim(again[i : i + chunk], False, tasks)
        while calls:
            await asyncio.wait(set(calls))
        await answers.put(None)
        await recording


# --- bookkeeping ----------------------------------------------------------------------------


def _code(exc: Exception) -> str:
    """How the report names a failure: the problem's code, else the exception's type."""
    return exc.code if isinstance(exc, AppError) else type(exc).__name__


def _failed(report: RunReport, job: str, item: str, exc: Exception) -> None:
    code = _code(exc)
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
