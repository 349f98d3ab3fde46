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

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing_run import charges, plans, reminders
from app.billing_run import repository as billing
from app.billing_run.context import BillingRun, RunReport, code_of, count_failure, count_item
from app.collection import repository as collection
from app.collection.policy import first_decline_at, in_flight
from app.directory.models import Account
from app.ledger import repository as ledger
from app.plan import repository as plan_repo
from app.seats.models import Plan, Quote
from app.seats.service import unit_price
from app.seats.status import PlanStatus

__all__ = ["BillingRun", "RunReport", "run_billing"]

log = logging.getLogger(__name__)


async def run_billing(deps: BillingRun) -> RunReport:
    """Process everything that is due now. Returns counts of what was done."""
    report = RunReport()
    async with deps.db.transaction() as session:
        now = await deps.clock.now(session)
    await _expire_trials(deps, now, report)
    await charges.pending_purchases(deps, now, report)
    await _invoice_renewals(deps, now, report)
    await charges.collect_renewals(deps, report)
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
            batch = await plan_repo.claim_plans(session, where, after, size)
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
                    batch = await plan_repo.reload_plans(session, ids)
                else:
                    for n in counts:
                        add(n)
                        count_item(report, job)
                    batch = []
            for account_id, plan in zip(ids, batch, strict=False):
                try:
                    async with session.begin_nested():
                        n = await work(session, plan)
                except Exception as exc:
                    count_failure(report, job, account_id, exc)
                    if failed is not None:
                        await _after_failure(session, failed, account_id, exc, report, job)
                else:
                    add(n)
                count_item(report, job)
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
        count_failure(report, f"{job} (after a failure)", account_id, again)


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
        (plan,) = await plan_repo.reload_plans(session, [account_id])
        if await plans.renewal_not_invoiced(session, plan, now, code_of(exc)):
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


def datetime_now() -> datetime:
    """Wall-clock time, for leases (processes), never for billing."""
    return datetime.now(UTC)


async def _purge_quotes(session: AsyncSession, now: datetime) -> int:
    """Quotes are only useful until they expire; keep a day for support questions."""
    result = await session.execute(delete(Quote).where(Quote.expires_at < now - timedelta(days=1)))
    return int(getattr(result, "rowcount", 0) or 0)
