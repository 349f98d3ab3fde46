"""The billing run's jobs that call the gateway (SPEC §6, R9, R14): pending purchases and
renewals, charged through ``app.collection`` with at most ``billing_concurrency`` calls in
flight. The collection engine's committed attempt is the claim: a second run finds the call in
flight and moves on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

from app.billing_run.context import BillingRun, RunReport, count_failure, count_item, log
from app.billing_run.plans import SYSTEM
from app.collection import repository as collection
from app.collection.policy import Mode, Wait
from app.collection.service import Answer, Claim, Collected
from app.ledger.models import AttemptOutcome, InvoiceKind, InvoiceStatus

Pending = tuple[str, datetime]  # a pending invoice: id, created_at


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
            count_failure(report, job, item[0], exc)
        finally:
            limit.release()
            count_item(report, job)

    async with asyncio.TaskGroup() as tasks:
        async for page in pages:
            for item in page:
                await limit.acquire()
                tasks.create_task(one(item))


async def pending_purchases(deps: BillingRun, now: datetime, report: RunReport) -> None:
    give_up = timedelta(hours=deps.settings.pending_purchase_hours)

    async def handle(item: Pending) -> None:
        invoice_id, created_at = item
        if now - created_at >= give_up:
            done = await deps.collector.void(invoice_id, SYSTEM)
            if done.invoice.status is InvoiceStatus.VOID:
                report.purchases_voided += 1
            elif done.wait is Wait.IN_FLIGHT:
                report.charges_in_flight_elsewhere += 1
            elif done.invoice.status is InvoiceStatus.PENDING:
                log.error("void of %s unconfirmed: %s", invoice_id, done.reason or "no answer")
                report.errors.append(f"{invoice_id}: void_unconfirmed")
            return
        _count_purchase(report, await deps.collector.collect(invoice_id, SYSTEM, Mode.RUN))

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


async def collect_renewals(deps: BillingRun, report: RunReport) -> None:
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
        count_item(report, job)

    async def record(batch: list[tuple[Claim, Answer]]) -> None:
        try:
            recorded = await collector.record(batch, SYSTEM)
        except Exception as exc:
            if len(batch) == 1:
                count_failure(report, job, batch[0][0].invoice.id, exc)
                count_item(report, job)
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
            count_failure(report, job, claim.invoice.id, exc)
            count_item(report, job)
            return
        finally:
            limit.release()
        await answers.put((claim, answer))

    async def claim(ids: list[str], skip_locked: bool, tasks: asyncio.TaskGroup) -> None:
        try:
            claimed = await collector.claim(ids, SYSTEM, Mode.RUN, skip_locked=skip_locked)
        except Exception as exc:
            if len(ids) > 1:
                for one in ids:
                    await claim([one], skip_locked, tasks)
                return
            count_failure(report, job, ids[0], exc)
            count_item(report, job)
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
