"""SPEC §10 under concurrency: invoice numbers never collide and leave no gap, whatever mix of
purchases (paid, declined, refused) and renewals of one account runs at once, through the real
server (2 worker processes) on PostgreSQL. Checked in SQL afterwards, and by ``seats verify``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from app.config import Settings
from app.ledger.invoices import account_part
from tests.conftest import PG_URL, Api
from tests.races.conftest import assert_invariants, statuses

pytestmark = pytest.mark.skipif(not PG_URL, reason="race tests need PostgreSQL")

ROUNDS = 3
BUYERS = 30


async def assert_numbers_gapless(sql: Callable[..., Any], account_id: str) -> int:
    rows = await sql(
        "SELECT sequence, number FROM invoice WHERE account_id = :a ORDER BY sequence",
        a=account_id,
    )
    n = len(rows)
    assert [s for s, _ in rows] == list(range(1, n + 1))
    assert [number for _, number in rows] == [
        f"INV-{account_part(account_id)}-{s:04d}" for s in range(1, n + 1)
    ]
    [(last,)] = await sql("SELECT last FROM invoice_counter WHERE account_id = :a", a=account_id)
    assert last == n
    return n


async def test_concurrent_purchases_and_renewals_of_one_account_number_gapless(
    live: Api, live_settings: Settings, sql: Callable[..., Any]
) -> None:
    assert (await live.buy(10)).status_code == 201
    # Declined purchases at once: each that reaches the gateway is a failed invoice, numbered.
    await live.put_account("acme", payment_method="pm_decline_card")
    # In rounds: each starts with no purchase pending (the last round's were declined), so
    # at least one buyer of each round reaches the gateway, whatever the machine's timing.
    declined: list[Any] = []
    for first in range(0, BUYERS, BUYERS // ROUNDS):
        burst = range(first, first + BUYERS // ROUNDS)
        declined += await asyncio.gather(*(live.buy(11 + i) for i in burst))
    counts = statuses(declined)
    assert set(counts) <= {(402, "payment_declined"), (409, "purchase_in_progress")}, counts
    assert counts.get((402, "payment_declined"), 0) >= ROUNDS, counts
    made = await assert_numbers_gapless(sql, "acme")
    assert made == 1 + counts[(402, "payment_declined")]

    # At the period's end: billing runs (the renewal) and purchases (refused while the renewal
    # is due, then charged, or refused as in progress or no longer an increase) all at once.
    await live.put_account("acme", payment_method="pm_card_visa")
    await live.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    runs = (live.client.post("/internal/v1/billing/run", headers=live.as_service()) for _ in "ab")
    mixed = await asyncio.gather(*(live.buy(50 + i) for i in range(BUYERS)), *runs)
    assert all(r.status_code < 500 for r in mixed), [r.text for r in mixed if r.status_code >= 500]
    # A run skips a plan a purchase holds locked (SKIP LOCKED) and leaves it to the next run:
    # one more, alone, so that the renewal is made whatever the burst's timing, and once.
    after = await live.client.post("/internal/v1/billing/run", headers=live.as_service())
    assert after.status_code == 200, after.text
    renewals = await sql("SELECT COUNT(*) FROM invoice WHERE kind = 'renewal'")
    assert renewals == [(1,)]
    assert await assert_numbers_gapless(sql, "acme") > made
    await assert_invariants(live_settings)
