"""``seats webhooks deliver`` as its own process: killed, stopped, and two at once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from app.webhooks import repository
from tests.conftest import NOW, Api, pg_dsn, postgres_only
from tests.live import free_port
from tests.webhooks.conftest import WorkerProcess, create_endpoint, until_attempts
from tests.webhooks.helpers import make_events
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.server


@pytest.fixture
def processes(database_url: str) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for proc in started:
        if output := proc.output():
            print(output)  # shown by pytest when the test failed
        proc.stop()


def spawn(processes: list[WorkerProcess], database_url: str, **env: str) -> WorkerProcess:
    proc = WorkerProcess(database_url, **env).start()
    processes.append(proc)
    return proc


async def test_sigkill_mid_send_loses_nothing_and_repeats_only_that_webhook_id(
    api: Api, receiver: Receiver, database_url: str, processes: list[WorkerProcess]
) -> None:
    ep = await create_endpoint(api, receiver.url("/a"))
    receiver.trust(ep["secret"])
    ids = await make_events(api, 3)
    first = spawn(processes, database_url)
    await receiver.until(3)
    held = receiver.hold("/a")
    ids += await make_events(api, 7)
    # The fourth send is in flight (the receiver has it, the worker awaits the answer).
    await receiver.until(4)
    first.kill()
    held.set()
    spawn(processes, database_url)
    got = await receiver.until(11, timeout=30)
    await asyncio.sleep(0.5)
    got = receiver.deliveries
    assert all(d.verified_by == {ep["secret"]} for d in got)
    counts = Counter(d.id for d in got)
    assert set(counts) == set(ids)  # nothing lost
    assert {i for i, n in counts.items() if n > 1} == {ids[3]}  # only the one in flight
    assert counts[ids[3]] == 2
    # Still in order: the repeat comes right after its first try.
    assert [d.id for d in got] == ids[:4] + ids[3:]
    log = await until_attempts(api, ep["id"], 10)
    assert sorted(a["event_id"] for a in log) == sorted(ids)  # the lost answer is not logged


async def test_sigterm_finishes_the_send_in_flight(
    api: Api, receiver: Receiver, database_url: str, processes: list[WorkerProcess], sql: Any
) -> None:
    ep = await create_endpoint(api, receiver.url("/a"))
    proc = spawn(processes, database_url)
    held = receiver.hold("/a")
    (event_id,) = await make_events(api, 1)
    await receiver.until(1)
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    assert proc.proc.poll() is None, "exited with a send in flight"
    held.set()
    assert await asyncio.to_thread(proc.proc.wait, 30) == 0
    (attempt,) = await until_attempts(api, ep["id"], 1)
    assert (attempt["event_id"], attempt["status_code"]) == (event_id, 200)
    rows = await sql("SELECT status FROM webhook_delivery")
    assert [r[0] for r in rows] == ["delivered"]


@postgres_only
async def test_two_workers_deliver_each_event_once_in_order(
    api: Api, receiver: Receiver, database_url: str, processes: list[WorkerProcess]
) -> None:
    paths = [f"/e{i}" for i in range(4)]
    for path in paths:
        await create_endpoint(api, receiver.url(path))
    ids = await make_events(api, 25)
    receiver.state.delay = 0.01
    for _ in range(2):
        spawn(processes, database_url, SEATS_WEBHOOK_CONCURRENCY="2")
    await receiver.until(len(ids) * len(paths), timeout=60)
    await asyncio.sleep(1)
    got = receiver.deliveries
    assert len(got) == len(ids) * len(paths)  # none twice
    for path in paths:
        assert [d.id for d in got if d.path == path] == ids


async def test_the_worker_serves_its_metrics(
    api: Api, receiver: Receiver, database_url: str, processes: list[WorkerProcess]
) -> None:
    port = free_port()
    await create_endpoint(api, receiver.url("/ok"))
    down = await create_endpoint(api, receiver.url("/down"))
    receiver.plan("/down", 500)
    spawn(processes, database_url, SEATS_WEBHOOK_METRICS_PORT=str(port))
    await make_events(api, 1)
    await until_attempts(api, down["id"], 1)
    await api.set_clock(NOW + timedelta(minutes=1))  # the failed one waits 5 s, then
    await until_attempts(api, down["id"], 2)
    receiver.plan("/down", 500)
    await make_events(api, 1)  # ... a second event, whose first try fails too
    await until_attempts(api, down["id"], 3)
    await receiver.until(5)
    # Short of its 5 s retry delay: it stays queued.
    await api.set_clock(NOW + timedelta(minutes=1, seconds=4))
    # The gauges are refreshed every 2 s: wait for the ones read at this clock.
    metrics = await until_metric(port, "seats_webhook_oldest_pending_age_seconds 4.0")
    assert "seats_webhook_queue_depth 1.0" in metrics.splitlines()
    assert 'seats_webhook_deliveries_total{outcome="delivered"} 3.0' in metrics
    assert 'seats_webhook_deliveries_total{outcome="failed"} 2.0' in metrics
    # The oldest pending delivery was queued 4 s ago on the service clock.
    (age,) = [
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("seats_webhook_oldest_pending_age_seconds ")
    ]
    assert age == 4.0


async def until_metric(port: int, line: str, timeout: float = 15) -> str:
    """The worker's /metrics once it contains ``line``."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.HTTPError:
                text = ""
            if line in text.splitlines():
                return text
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{line!r} not in /metrics:\n{text}")
            await asyncio.sleep(0.2)


@postgres_only
async def test_a_claim_never_skips_the_head_of_an_endpoints_queue(
    api: Api, receiver: Receiver, app: Any, sql: Any
) -> None:
    """The claim locks the endpoint, then reads its oldest pending delivery: it never passes
    over a delivery it could not lock to send a later one (a worker that did so sent events out
    of order, seen under load with two worker processes)."""
    endpoint = await create_endpoint(api, receiver.url("/q"))
    await make_events(api, 3)
    rows = await sql(
        "SELECT id FROM webhook_delivery WHERE endpoint_id = :e ORDER BY id", e=endpoint["id"]
    )
    head, second = rows[0][0], rows[1][0]
    blocker = await asyncpg.connect(pg_dsn())
    try:
        # Another transaction holds the head's row (not the endpoint's) for a moment.
        await blocker.execute("BEGIN")
        await blocker.execute("SELECT 1 FROM webhook_delivery WHERE id = $1 FOR UPDATE", head)

        async def claim() -> Any:
            async with app.state.db.transaction() as session:
                claimed = await repository.claim_head(session, endpoint["id"])
                return None if claimed is None else claimed[1].id

        task = asyncio.create_task(claim())
        await asyncio.sleep(0.3)
        await blocker.execute("COMMIT")
        claimed = await asyncio.wait_for(task, 10)
    finally:
        await blocker.close()
    assert claimed in (head, None), f"claimed {claimed} ({second} is second) over the head {head}"
