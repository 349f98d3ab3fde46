"""Fixtures for the security tests: a snapshot of every row of every table, and seeded worlds
that are built through the API once per module and then restored row by row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from app.db import Base
from app.models import import_all
from tests.conftest import Api

import_all()

# Every table of the schema: a refused request must leave all of them as they were.
TABLES = (
    "account",
    "account_user",
    "plan",
    "assignment",
    "quote",
    "invoice",
    "invoice_line",
    "charge_outcome",
    "charge_attempt",
    "event",
    "idempotency_key",
    "test_clock",
)

Snapshot = dict[str, list[tuple[Any, ...]]]
SnapshotFn = Callable[[], Awaitable[Snapshot]]


@pytest.fixture
def snapshot(app: Any) -> SnapshotFn:
    """``await snapshot()``: every row of every table, in a stable order.

    Reads through the test app's own engine (the same database as the ``sql`` fixture) so that
    hundreds of snapshots do not each open a new connection pool.
    """

    async def take() -> Snapshot:
        rows: Snapshot = {}
        async with app.state.db.engine.connect() as conn:
            for table in TABLES:
                result = await conn.execute(text(f"SELECT * FROM {table}"))
                rows[table] = sorted(
                    (tuple(row._mapping.items()) for row in result.all()), key=repr
                )
        return rows

    return take


def changed_tables(before: Snapshot, after: Snapshot) -> list[str]:
    """The tables whose rows differ (for a readable assertion message)."""
    return [table for table in TABLES if before[table] != after[table]]


def rows_not_of(snapshot: Snapshot, account: str) -> Snapshot:
    """The rows that belong to some account other than ``account`` (global rows left out)."""
    invoice_owner = {dict(row)["id"]: dict(row)["account_id"] for row in snapshot["invoice"]}

    def owner(table: str, row: dict[str, Any]) -> str | None:
        if table == "account":
            return str(row["id"])
        if "account_id" in row:
            return str(row["account_id"])
        if "invoice_id" in row:  # invoice lines and charge attempts
            return invoice_owner[row["invoice_id"]]
        return None  # the test clock

    return {
        table: [row for row in rows if owner(table, dict(row)) not in (account, None)]
        for table, rows in snapshot.items()
    }


Ids = dict[str, str]
Build = Callable[[Api], Awaitable[Ids]]
World = Callable[[str, Build], Awaitable[tuple[Api, Ids]]]


@pytest.fixture(scope="module")
def _built_worlds() -> dict[str, tuple[list[tuple[Any, list[dict[str, Any]]]], Ids]]:
    return {}


@pytest.fixture
def world_of(app: Any, client: httpx.AsyncClient, _built_worlds: dict[str, Any]) -> World:
    """``await world_of(name, build)``: this test's (empty) database holding world ``name``.

    The first test of a module that asks for a world builds it through the API with ``build``
    and keeps every row; the following ones insert those rows again, which is the same
    database state without a dozen HTTP requests per test.
    """

    async def get(name: str, build: Build) -> tuple[Api, Ids]:
        api = Api(client)
        engine = app.state.db.engine
        if name not in _built_worlds:
            ids = await build(api)
            async with engine.connect() as conn:
                rows = [
                    (table, [dict(row._mapping) for row in await conn.execute(select(table))])
                    for table in Base.metadata.sorted_tables
                ]
            _built_worlds[name] = (rows, ids)
            return api, ids
        rows, ids = _built_worlds[name]
        async with engine.begin() as conn:
            for table, table_rows in rows:  # parents first
                if table_rows:
                    await conn.execute(table.insert(), table_rows)
        return api, ids

    return get
