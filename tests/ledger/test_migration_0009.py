"""Migration 0009 numbers the invoices already in the ledger, per account in creation order,
starts each account's counter at its count, and fills the new line fields the ledger can tell;
the next invoice continues the sequence. On SQLite and, with TEST_DATABASE_URL, PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.ledger.invoices import account_part
from app.schema import alembic_config
from tests.conftest import PG_URL, pg_dsn

BEFORE = "0008_agent_check_function"
DATABASE = "seats_migration_0009"

ROWS = [
    "INSERT INTO account (id, name, billing_cycle, billing_anchor, payment_method, currency,"
    " created_at, updated_at) VALUES ('acme', 'Acme', 'monthly', '2026-11-01', 'pm_card_visa',"
    " 'USD', '2026-11-01 00:00:00', '2026-11-01 00:00:00'), ('zed', 'Zed', 'monthly',"
    " '2026-11-01', 'pm_card_visa', 'USD', '2026-11-01 00:00:00', '2026-11-01 00:00:00')",
    # acme: a purchase on the 21st, a renewal on Dec 1st, a declined purchase on the 2nd;
    # written out of order (ids and insertion): numbering follows created_at, then id.
    "INSERT INTO invoice (id, account_id, kind, status, currency, total, seats, period_start,"
    " period_end, payment_method, created_by, created_at, billing_cycle, paid_at) VALUES"
    " ('inv_c', 'acme', 'purchase', 'failed', 'USD', 1900, 12, '2026-12-01', '2027-01-01', 'pm',"
    " 'user:alice', '2026-12-02 09:00:00', 'monthly', NULL),"
    " ('inv_b', 'acme', 'renewal', 'pending', 'USD', 19000, 10, '2026-12-01', '2027-01-01', 'pm',"
    " 'system:billing', '2026-12-01 01:00:00', 'monthly', NULL),"
    " ('inv_a', 'acme', 'purchase', 'paid', 'USD', 6333, 10, '2026-11-01', '2026-12-01', 'pm',"
    " 'user:alice', '2026-11-21 12:00:00', 'monthly', '2026-11-21 12:00:01'),"
    " ('inv_z', 'zed', 'purchase', 'failed', 'USD', 1900, 1, '2026-11-01', '2026-12-01', 'pm',"
    " 'user:zoe', '2026-11-30 12:00:00', 'monthly', NULL)",
    "INSERT INTO invoice_line (invoice_id, position, description, quantity, unit_price, amount,"
    " period_start, period_end) VALUES"
    " ('inv_a', 0, '10 Conversations seat(s)', 10, 1900, 6333, '2026-11-21', '2026-12-01'),"
    " ('inv_b', 0, '10 Conversations seat(s)', 10, 1900, 19000, '2026-12-01', '2027-01-01'),"
    " ('inv_c', 0, '2 Conversations seat(s)', 2, 1900, 1900, '2026-12-02', '2027-01-01'),"
    " ('inv_z', 0, '1 Conversations seat(s)', 1, 1900, 1900, '2026-11-01', '2026-12-01')",
]


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own: PostgreSQL when the suite runs there, else SQLite."""
    if not PG_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'migration.db'}"
        return
    conn = await asyncpg.connect(pg_dsn())
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DATABASE}")
        yield PG_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
    finally:
        await conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await conn.close()


def upgrade(url: str, revision: str) -> None:
    cfg = alembic_config(None)
    cfg.attributes.update(url=url, configure_logging=False, app_role=None)
    command.upgrade(cfg, revision)


async def run(url: str, *statements: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            result = None
            for statement in statements:
                result = await conn.execute(text(statement))
            return list(result.all()) if result is not None and result.returns_rows else []
    finally:
        await engine.dispose()


async def test_0009_numbers_existing_invoices_per_account_in_creation_order(url: str) -> None:
    await asyncio.to_thread(upgrade, url, BEFORE)
    await run(url, *ROWS)
    await asyncio.to_thread(upgrade, url, "head")

    acme, zed = account_part("acme"), account_part("zed")
    invoices = await run(url, "SELECT id, sequence, number FROM invoice ORDER BY id")
    assert [tuple(r) for r in invoices] == [
        ("inv_a", 1, f"INV-{acme}-0001"),
        ("inv_b", 2, f"INV-{acme}-0002"),
        ("inv_c", 3, f"INV-{acme}-0003"),
        ("inv_z", 1, f"INV-{zed}-0001"),
    ]
    counters = await run(url, "SELECT account_id, last FROM invoice_counter ORDER BY account_id")
    assert [tuple(r) for r in counters] == [("acme", 3), ("zed", 1)]
    lines = await run(
        url,
        "SELECT invoice_id, description, seats_before, seats_after, days, days_in_period"
        " FROM invoice_line ORDER BY invoice_id",
    )
    assert [tuple(r) for r in lines] == [
        # A purchase: its days of its invoice's period; its seats before unknown.
        ("inv_a", "10 Conversations seat(s)", None, 10, 10, 30),
        # A renewal changes no seats; a whole period has no days.
        ("inv_b", "10 Conversations seat(s)", 10, 10, None, None),
        ("inv_c", "2 Conversations seat(s)", None, 12, 30, 31),
        ("inv_z", "1 Conversations seat(s)", None, 1, 30, 30),
    ]
    # The ledger stays append-only: a number never changes, a line is never rewritten.
    for statement in (
        "UPDATE invoice SET number = 'X' WHERE id = 'inv_b'",
        "UPDATE invoice SET status = 'paid', paid_at = '2026-12-01 02:00:00', sequence = 9"
        " WHERE id = 'inv_b'",
        "UPDATE invoice_line SET seats_before = 1 WHERE invoice_id = 'inv_a'",
    ):
        with pytest.raises(Exception, match=r"append-only|may only change once"):
            await run(url, statement)
