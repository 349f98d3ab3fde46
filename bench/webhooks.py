"""Webhook delivery: events/s of one worker to a loopback receiver, commit-to-delivery delay.

    scripts/with-postgres .venv/bin/python bench/webhooks.py      # PostgreSQL (docs/benchmarks.md)
    .venv/bin/python bench/webhooks.py                             # SQLite, in a temp dir

One ``seats webhooks deliver`` process (default settings: 16 sends in flight, 0.2 s poll)
sends to a receiver on 127.0.0.1 in this process, which verifies every signature with the
``standardwebhooks`` library and answers 200.

1. Throughput to one endpoint (its events go one at a time, in order) and spread over eight
   endpoints (sent concurrently): BENCH_WEBHOOK_EVENTS deliveries (1,000) each, committed
   first, 100 events per transaction, while the worker waits; rate = deliveries / (last
   arrival - first arrival).
2. Delay: one event per transaction at BENCH_WEBHOOK_RATE (20/s) for BENCH_WEBHOOK_SECONDS
   (10 s) to one endpoint; delay = arrival at the receiver - return of COMMIT.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.cli import migrate  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import Database  # noqa: E402
from app.directory.models import Account  # noqa: E402
from app.ledger import repository as ledger  # noqa: E402
from app.webhooks import outbox  # noqa: E402
from app.webhooks.models import WebhookEndpoint  # noqa: E402
from app.webhooks.service import new_secret  # noqa: E402
from tests.webhooks.receiver import Receiver  # noqa: E402

EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS") or 1000)
RATE = float(os.environ.get("BENCH_WEBHOOK_RATE") or 20)
SECONDS = float(os.environ.get("BENCH_WEBHOOK_SECONDS") or 10)
WORKER = [sys.executable, "-m", "app.cli", "webhooks", "deliver"]
if os.environ.get("BENCH_WEBHOOK_PROFILE"):  # a cProfile of the worker, written on SIGTERM
    WORKER[1:1] = ["-m", "cProfile", "-o", os.environ["BENCH_WEBHOOK_PROFILE"]]
SPREAD = 8  # endpoints of the concurrent throughput run
SECRET = "bench-secret-" + "k" * 40
# One event type per run, so that each run's events go to its own endpoints only.
SINGLE, MANY, DELAY = "agent.assigned", "agent.unassigned", "seats.purchased"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def seed(db: Database, receiver: Receiver) -> None:
    """The account the events are of, and the endpoints of each run."""
    now = datetime.now(UTC)
    endpoints = [("single", SINGLE), ("delay", DELAY)] + [(f"many{i}", MANY) for i in range(8)]
    async with db.transaction() as session:
        session.add(
            Account(
                id="bench",
                name="Bench",
                billing_cycle="monthly",
                billing_anchor=date(2026, 11, 1),
                payment_method="pm_card_visa",
                currency="USD",
                created_at=now,
                updated_at=now,
            )
        )
        for name, event_type in endpoints:
            secret = new_secret()
            receiver.trust(secret)
            session.add(
                WebhookEndpoint(
                    id=f"whe_{name}",
                    url=receiver.url(f"/{name}"),
                    description="",
                    event_types=[event_type],
                    disabled=False,
                    secret=secret,
                    created_at=now,
                    updated_at=now,
                )
            )


async def commit_events(db: Database, event_type: str, count: int) -> dict[str, float]:
    """``count`` events in one transaction; their ids and the wall time COMMIT returned."""
    ids = []
    async with db.transaction() as session:
        for i in range(count):
            event = await ledger.add_event(
                session,
                account_id="bench",
                type=event_type,
                actor="bench",
                at=datetime.now(UTC),
                data={"user_id": f"u{i}", "seats_before": i, "seats_after": i + 1},
            )
            ids.append(event.id)
    done = time.time()
    return dict.fromkeys(ids, done)


async def throughput(
    db: Database, receiver: Receiver, env: dict[str, str], event_type: str, endpoints: int
) -> float:
    """Deliveries per second of a worker started on a full queue."""
    before = len(receiver.deliveries)
    per_endpoint = EVENTS // endpoints
    for start in range(0, per_endpoint, 100):
        await commit_events(db, event_type, min(100, per_endpoint - start))
    queued = per_endpoint * endpoints
    worker = subprocess.Popen(WORKER, env=env)
    try:
        got = (await receiver.until(before + queued, timeout=600))[before:]
    finally:
        worker.terminate()
        worker.wait(30)
    return (len(got) - 1) / (got[-1].received_at - got[0].received_at)


async def delay(db: Database, receiver: Receiver, env: dict[str, str]) -> list[float]:
    """Commit-to-arrival delays (ms) of events committed one by one at RATE."""
    worker = subprocess.Popen(WORKER, env=env)
    try:
        # Measure once the worker runs: a first event must have come through.
        before = len(receiver.deliveries) + 1
        await commit_events(db, DELAY, 1)
        await receiver.until(before, timeout=120)
        committed: dict[str, float] = {}
        start = time.monotonic()
        while time.monotonic() - start < SECONDS:
            committed |= await commit_events(db, DELAY, 1)
            await asyncio.sleep(max(0.0, start + len(committed) / RATE - time.monotonic()))
        got = (await receiver.until(before + len(committed), timeout=120))[before:]
    finally:
        worker.terminate()
        worker.wait(30)
    return [(d.received_at - committed[d.id]) * 1000 for d in got]


async def run(url: str) -> None:
    outbox.install()
    db = Database(url)
    env = {
        **os.environ,
        "SEATS_DATABASE_URL": url,
        "SEATS_JWT_SECRET": SECRET,
        "SEATS_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "SEATS_LOG_LEVEL": "WARNING",
    }
    with Receiver() as receiver:
        await seed(db, receiver)
        one = await throughput(db, receiver, env, SINGLE, 1)
        many = await throughput(db, receiver, env, MANY, SPREAD)
        delays = await delay(db, receiver, env)
        assert all(d.verified_by for d in receiver.deliveries), "a signature did not verify"
    await db.dispose()
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(
        f"webhooks, {backend}, one worker: {one:.0f} deliveries/s to one endpoint, "
        f"{many:.0f}/s over {SPREAD} endpoints ({EVENTS} queued each run); commit->delivery "
        f"p50 {statistics.median(delays):.0f} ms, p99 {percentile(delays, 99):.0f} ms "
        f"({len(delays)} events at {RATE:.0f}/s)"
    )


def main() -> None:
    url = os.environ.get("TEST_DATABASE_URL")
    url = url or f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-webhooks-')}/seats.db"
    migrate(Settings(database_url=url, jwt_secret=SECRET))
    asyncio.run(run(url))


if __name__ == "__main__":
    main()
