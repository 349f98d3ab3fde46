"""``seats webhooks deliver``: the long-running worker that empties the outbox.

Jobs over claimed rows, never a list read once. Each pass finds the endpoints whose oldest
pending delivery is due, and drains each of them in one task (at most
``SEATS_WEBHOOK_CONCURRENCY`` at once): one delivery at a time and in order, so a failing event
holds back the later ones of its endpoint and no other.

Several workers may run, on several hosts, on PostgreSQL: a worker sends a delivery while it
holds its endpoint's row lock (``FOR NO KEY UPDATE SKIP LOCKED``) and records the answer in
that same transaction. Another worker skips the endpoint; a worker that dies (even SIGKILL)
releases the lock with its connection, and the delivery it had not recorded is sent again
with the same ``webhook-id``, which receivers deduplicate on. (A PATCH or DELETE of that
endpoint waits for the send in flight, at most the 10 s timeout.) On SQLite, which has one writer
and no row locks, run one worker: it holds no transaction during a send, so the service's
requests never wait on a slow receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.ids import new_id
from app.webhooks import repository
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.outbox import delivery_rows, render
from app.webhooks.schedule import Outcome, next_attempt_at, outcome_of, should_disable
from app.webhooks.sender import Reply, Sender
from app.webhooks.service import signing_secrets
from app.webhooks.urls import allowed_hosts

log = logging.getLogger("app.webhooks")

DELIVERIES = Counter(
    "seats_webhook_deliveries_total", "Webhook send attempts by outcome", ["outcome"]
)
QUEUE_DEPTH = Gauge("seats_webhook_queue_depth", "Pending deliveries to enabled endpoints")
OLDEST_AGE = Gauge(
    "seats_webhook_oldest_pending_age_seconds",
    "Age of the oldest pending delivery on the service clock (0 when none)",
)
DISABLED = "webhook_endpoint.disabled"
# How often the queue gauges are read from the database.
GAUGE_SECONDS = 2.0
# Deliveries one task sends before it lets other endpoints have its slot.
BATCH = 50


@dataclass(frozen=True)
class Job:
    """One delivery to send, with everything the send needs."""

    endpoint_id: str
    delivery_id: int
    event_id: str
    url: str
    secrets: list[str]
    body: str


class Worker:
    """Delivers due webhooks until ``stop()``; finishes the sends in flight before it returns."""

    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.clock = clock
        self.concurrency = settings.webhook_concurrency
        self.poll = settings.webhook_poll_seconds
        self.sender = Sender(
            allowed_hosts(settings.webhook_allow_hosts),
            timeout=settings.webhook_timeout,
            max_connections=settings.webhook_concurrency,
        )
        self.stopping = asyncio.Event()
        self.busy: dict[str, asyncio.Task[None]] = {}

    def stop(self) -> None:
        """Claim nothing more; the sends in flight finish and are recorded."""
        self.stopping.set()

    async def run(self) -> None:
        """The main loop."""
        gauges = asyncio.create_task(self._update_gauges())
        try:
            while not self.stopping.is_set():
                free = self.concurrency - len(self.busy)
                if free > 0:
                    for endpoint_id in await self._due(free):
                        task = asyncio.create_task(self._drain(endpoint_id))
                        self.busy[endpoint_id] = task
                        task.add_done_callback(functools.partial(self._done, endpoint_id))
                # Woken early by stop(); new rows are found on the next pass.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=self.poll)
        finally:
            if self.busy:
                await asyncio.gather(*self.busy.values(), return_exceptions=True)
            gauges.cancel()
            await self.sender.aclose()

    def _done(self, endpoint_id: str, _: asyncio.Task[None]) -> None:
        self.busy.pop(endpoint_id, None)

    async def _due(self, free: int) -> list[str]:
        try:
            async with self.db.transaction() as session:
                now = await self.clock.now(session)
                found = await repository.due_endpoints(session, now, free + len(self.busy))
        except Exception:
            log.exception("webhook worker: cannot read the outbox")
            return []
        return [e for e in found if e not in self.busy][:free]

    async def _drain(self, endpoint_id: str) -> None:
        for _ in range(BATCH):
            if self.stopping.is_set():
                return
            try:
                sent = await self.deliver_head(endpoint_id)
            except Exception:
                log.exception("webhook worker: delivery to %s failed", endpoint_id)
                return
            if not sent:
                return

    async def deliver_head(self, endpoint_id: str) -> bool:
        """Send the endpoint's oldest pending delivery if it is due; False if nothing was."""
        if self.db.is_sqlite:
            return await self._deliver_unlocked(endpoint_id)
        async with self.db.transaction() as session:
            claimed = await repository.claim_head(session, endpoint_id)
            if claimed is None:
                return False  # another worker holds it, it was disabled, or it is empty
            endpoint, head = claimed
            job = self._job(endpoint, head, await self.clock.now(session))
            if job is None:
                return False
            answer = await self.sender.send(job.url, job.secrets, job.event_id, job.body)
            await self._record(session, endpoint, head, answer)
        return True

    async def _deliver_unlocked(self, endpoint_id: str) -> bool:
        # SQLite: one worker, and this task is the only one on the endpoint (``busy``).
        async with self.db.transaction() as session:
            endpoint = await repository.get_endpoint(session, endpoint_id)
            if endpoint is None or endpoint.disabled:
                return False
            head = await repository.head_delivery(session, endpoint_id)
            if head is None:
                return False
            job = self._job(endpoint, head, await self.clock.now(session))
        if job is None:
            return False
        answer = await self.sender.send(job.url, job.secrets, job.event_id, job.body)
        async with self.db.transaction() as session:
            endpoint = await repository.get_endpoint(session, endpoint_id)
            delivery = await session.get(WebhookDelivery, job.delivery_id)
            if endpoint is not None and delivery is not None:  # else deleted while in flight
                await self._record(session, endpoint, delivery, answer)
        return True

    def _job(self, endpoint: WebhookEndpoint, head: WebhookDelivery, now: datetime) -> Job | None:
        if head.next_attempt_at > now:
            return None
        return Job(
            endpoint_id=endpoint.id,
            delivery_id=head.id,
            event_id=head.event_id,
            url=endpoint.url,
            secrets=signing_secrets(endpoint, now),
            body=head.body,
        )

    async def _record(
        self,
        session: AsyncSession,
        endpoint: WebhookEndpoint,
        delivery: WebhookDelivery,
        answer: Reply,
    ) -> None:
        if delivery.status != DeliveryStatus.PENDING:
            return
        now = await self.clock.now(session)
        delivery.attempts += 1
        outcome = outcome_of(answer.status_code, delivery.attempts)
        DELIVERIES.labels(outcome.value).inc()
        retry_at: datetime | None = None
        if outcome is Outcome.DELIVERED:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.finished_at = now
            endpoint.failing_since = None
        else:
            if endpoint.failing_since is None:
                endpoint.failing_since = now
            retry_at = next_attempt_at(delivery.attempts, now)
            if retry_at is None:
                delivery.status = DeliveryStatus.FAILED
                delivery.finished_at = now
            else:
                delivery.next_attempt_at = retry_at
            if outcome is Outcome.GONE:
                await self._disable(session, endpoint, "gone", now)
            elif should_disable(endpoint.failing_since, now):
                await self._disable(session, endpoint, "failing", now)
        session.add(
            WebhookAttempt(
                id=new_id("wha"),
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                event_id=delivery.event_id,
                attempt=delivery.attempts,
                status_code=answer.status_code,
                error=answer.error,
                at=now,
                next_attempt_at=retry_at if not endpoint.disabled else None,
            )
        )
        await session.flush()

    async def _disable(
        self, session: AsyncSession, endpoint: WebhookEndpoint, reason: str, now: datetime
    ) -> None:
        endpoint.disabled = True
        endpoint.disabled_reason = reason
        endpoint.updated_at = now
        await session.flush()
        log.warning("webhook endpoint %s disabled (%s)", endpoint.id, reason)
        # No account's audit event: it goes to the other endpoints subscribed to it.
        event_id = new_id("evt")
        data = {"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason}
        body = render(event_id, DISABLED, None, now, data)
        endpoints = await repository.enabled_endpoints(session)
        rows = delivery_rows(endpoints, event_id=event_id, event_type=DISABLED, body=body, at=now)
        await repository.insert_deliveries(session, rows)

    async def _update_gauges(self) -> None:
        while True:
            try:
                async with self.db.transaction() as session:
                    now = await self.clock.now(session)
                    depth, oldest = await repository.queue_stats(session)
                QUEUE_DEPTH.set(depth)
                OLDEST_AGE.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0)
            except Exception:
                log.exception("webhook worker: cannot read the queue's size")
            await asyncio.sleep(GAUGE_SECONDS)


async def run_worker(db: Database, clock: Clock, settings: Settings) -> None:
    """Run a worker until SIGTERM or SIGINT, then let the sends in flight finish."""
    worker = Worker(db, clock, settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    log.info("webhook worker started (concurrency %d)", worker.concurrency)
    await worker.run()
    log.info("webhook worker stopped")
