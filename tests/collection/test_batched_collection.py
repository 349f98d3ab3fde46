"""The collection engine's batches and the purchase's first attempt (SPEC §6, §7, issue 10).

* A purchase commits its pending invoice and its first attempt in one transaction: no
  collector ever sees the invoice without its claim, and a crash after that commit and
  before the call leaves an attempt that the next collector resends under the same key.
* A billing run claims renewals a chunk at a time with SKIP LOCKED; a plan that a request
  holds while the run passes is not skipped for good: the run comes back to it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event

from app.config import Settings
from bench.billing_fixture import (
    RENEWAL_RUN_AT,
    LoopbackPayments,
    billing_env,
    renewal_stats,
    run_billing,
    seed_due_accounts,
    set_test_clock,
)
from tests.billing_run.conftest import assert_ran_clean
from tests.conftest import PG_URL, Api, postgres_only
from tests.live import LiveServer, buy_until_killed, crash_env, free_port
from tests.payments_server import PaymentsServer
from tests.races.conftest import assert_invariants


async def test_a_purchase_commits_its_invoice_and_first_attempt_together(
    app: Any, api: Api, sql: Callable[..., Any]
) -> None:
    statements: list[str] = []
    engine = app.state.db.engine.sync_engine

    def on_execute(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    def on_commit(_c: Any) -> None:
        statements.append("COMMIT")

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        r = await api.buy(5)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
    assert r.status_code == 201, r.text

    # One statement writes both on PostgreSQL, two on SQLite: either way, one commit.
    made = next(i for i, s in enumerate(statements) if "INSERT INTO invoice " in s)
    claimed = next(i for i, s in enumerate(statements) if "INSERT INTO charge_attempt " in s)
    assert made <= claimed
    assert "COMMIT" not in statements[made:claimed], statements[made : claimed + 1]
    tries = await sql(
        "SELECT a.number, a.gateway_key, o.outcome FROM charge_attempt a "
        "JOIN charge_outcome o ON o.invoice_id = a.invoice_id AND o.number = a.number"
    )
    assert [tuple(t) for t in tries] == [(1, r.json()["invoice"]["id"], "succeeded")]


@pytest.fixture
def payments() -> Iterator[PaymentsServer]:
    with PaymentsServer() as server:
        yield server


@pytest.mark.skipif(not PG_URL, reason="a crash test: the real server on PostgreSQL")
async def test_a_crash_between_the_purchase_commit_and_its_call_leaves_the_claim(
    database_url: str, settings: Settings, payments: PaymentsServer, sql: Callable[..., Any]
) -> None:
    """Killed after the invoice and its attempt commit, before the gateway is called: the
    attempt is on record without an outcome (never an invoice without its claim), nothing was
    charged, and a retry with the same key, once the lease has passed, charges once."""
    env = crash_env(payments.url)
    key = uuid.uuid4().hex
    await buy_until_killed(database_url, "before_charge", env, key)

    [(invoice_id, status)] = await sql("SELECT id, status FROM invoice")
    assert status == "pending"
    tries = await sql(
        "SELECT a.number, a.gateway_key, o.outcome FROM charge_attempt a "
        "LEFT JOIN charge_outcome o ON o.invoice_id = a.invoice_id AND o.number = a.number"
    )
    assert [tuple(t) for t in tries] == [(1, invoice_id, None)]
    assert payments.charges == []

    with LiveServer(database_url, workers=1, **env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            await asyncio.sleep(0.6)  # the dead request's key lock and its lease expire
            r = await Api(client).buy(5, key=key)
            assert r.status_code == 201, r.text
            assert r.json()["invoice"]["id"] == invoice_id

    assert [c["idempotency_key"] for c in payments.charges] == [invoice_id]
    tries = await sql(
        "SELECT a.number, a.gateway_key, o.outcome FROM charge_attempt a "
        "LEFT JOIN charge_outcome o ON o.invoice_id = a.invoice_id AND o.number = a.number "
        "ORDER BY a.number"
    )
    assert [tuple(t) for t in tries] == [(1, invoice_id, None), (2, invoice_id, "succeeded")]
    await assert_invariants(settings)


@postgres_only
async def test_a_run_comes_back_to_a_plan_a_request_held_while_it_passed(
    database_url: str,
) -> None:
    """The run's claims skip locked plans (another run is claiming them); one that someone
    else held while the run went past is claimed at the end of the job, waiting for it: every
    due renewal is charged, none twice."""
    accounts = await seed_due_accounts(database_url, 30)
    await set_test_clock(database_url, RENEWAL_RUN_AT)
    # A first run with the payments service unreachable: every renewal invoiced, none paid.
    (down,) = run_billing([billing_env(database_url, f"http://127.0.0.1:{free_port()}")])
    assert down.returncode != 0
    held = accounts[3].account_id
    with LoopbackPayments(latency=0.0) as payments:
        blocker = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM plan WHERE account_id = $1 FOR UPDATE", held)
            env = billing_env(database_url, payments.url)
            running = asyncio.get_running_loop().run_in_executor(None, run_billing, [env])
            paid = 0
            for _ in range(600):  # the run charges every other renewal meanwhile
                paid = await blocker.fetchval(
                    "SELECT count(*) FROM invoice WHERE kind = 'renewal' AND status = 'paid'"
                )
                if paid == len(accounts) - 1:
                    break
                await asyncio.sleep(0.1)
            assert paid == len(accounts) - 1
            await asyncio.sleep(0.5)
            await tx.rollback()
            (result,) = await running
        finally:
            await blocker.close()
    assert_ran_clean(result)
    stats = await renewal_stats(database_url)
    assert stats.paid == stats.invoiced == len(accounts), stats
    assert payments.keys_sent_more_than_once() == {}
