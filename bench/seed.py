"""Bulk seed for the benchmark: COPY through asyncpg, never the HTTP API (seconds, not minutes).

Ids are decimal strings (the API's id pattern allows them) so that pgbench can address the same
rows with integer ``\\set`` variables: account ``"42"``, user ``"7"`` of that account.

Regular accounts ``1..n``: 50 users each (user 1 the primary admin, 2-5 admins, the rest
users), an active monthly plan of 20 seats with users 1-10 as agents, a paid purchase invoice
and a few events. Plus ``BIG`` (100,000 seats, 10,000 agents among 12,000 users) and ``SMALL``
(40 seats, 10 agents among 100 users).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from app.ledger.invoices import invoice_number

USERS_PER_ACCOUNT = 50
AGENTS_PER_ACCOUNT = 10
SEATS_PER_ACCOUNT = 20
ADMINS = range(2, 6)
BIG, SMALL = "900001", "900002"
BIG_USERS, BIG_AGENTS, BIG_SEATS = 12_000, 10_000, 100_000
SMALL_USERS, SMALL_AGENTS, SMALL_SEATS = 100, 10, 40
SEED_ACTOR = "service:bench-seed"
INVOICE_PREFIX = "INV"  # the setting's default (SEATS_INVOICE_PREFIX)


@dataclass(frozen=True)
class Shape:
    accounts: int
    big_users: int = BIG_USERS
    big_agents: int = BIG_AGENTS


def period(today: date) -> tuple[date, date]:
    start = today.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


async def seed(conn: asyncpg.Connection, shape: Shape) -> dict[str, int]:
    """Insert every row; returns row counts per table."""
    now = datetime.now(UTC)
    start, end = period(now.date())
    accounts, users, plans, assignments, invoices, lines, events = [], [], [], [], [], [], []
    counters = []
    specs = [
        (str(a), USERS_PER_ACCOUNT, AGENTS_PER_ACCOUNT, SEATS_PER_ACCOUNT)
        for a in range(1, shape.accounts + 1)
    ]
    specs += [
        (BIG, shape.big_users, shape.big_agents, BIG_SEATS),
        (SMALL, SMALL_USERS, SMALL_AGENTS, SMALL_SEATS),
    ]
    created = now - timedelta(days=90)
    for account_id, n_users, n_agents, seats in specs:
        accounts.append(
            (
                account_id,
                f"Account {account_id}",
                "monthly",
                start,
                "pm_card_visa",
                "USD",
                created,
                created,
            )
        )
        for u in range(1, n_users + 1):
            role = "primary_admin" if u == 1 else "admin" if u in ADMINS else "user"
            users.append(
                (
                    account_id,
                    str(u),
                    f"u{u}@a{account_id}.example",
                    f"User {u}",
                    role,
                    created,
                    created,
                )
            )
        for u in range(1, n_agents + 1):
            # Distinct times, oldest first, so that keyset pages have a stable order.
            assignments.append((account_id, str(u), created + timedelta(seconds=u), SEED_ACTOR))
        plans.append(
            (
                account_id,
                "active",
                seats,
                n_agents,
                None,
                None,
                start,
                end,
                None,
                None,
                created,
                created,
            )
        )
        invoice_id = f"inv_seed_{account_id}"
        invoices.append(
            (
                invoice_id,
                account_id,
                "purchase",
                "paid",
                "USD",
                seats * 1900,
                seats,
                start,
                end,
                "pm_card_visa",
                None,
                SEED_ACTOR,
                created,
                created,
                f"ch_seed_{account_id}",
                None,
                1,
                invoice_number(INVOICE_PREFIX, account_id, 1),
            )
        )
        counters.append((account_id, 1))
        lines.append(
            (
                invoice_id,
                0,
                f"{seats} Conversations seat(s), monthly",
                seats,
                1900,
                seats * 1900,
                start,
                end,
            )
        )
        for i, (kind, data) in enumerate(
            (
                ("trial.started", {"seats_before": 0, "seats_after": 20}),
                (
                    "seats.purchased",
                    {
                        "seats_before": 20,
                        "seats_after": seats,
                        "invoice_id": invoice_id,
                        "amount": seats * 1900,
                    },
                ),
                ("agent.assigned", {"user_id": "1", "assigned_before": 0, "assigned_after": 1}),
            )
        ):
            events.append(
                (
                    f"evt_seed_{account_id}_{i}",
                    account_id,
                    kind,
                    SEED_ACTOR,
                    created + timedelta(seconds=i),
                    json.dumps(data),
                )
            )
    tables = {
        "account": (
            accounts,
            [
                "id",
                "name",
                "billing_cycle",
                "billing_anchor",
                "payment_method",
                "currency",
                "created_at",
                "updated_at",
            ],
        ),
        "account_user": (
            users,
            ["account_id", "id", "email", "name", "role", "created_at", "updated_at"],
        ),
        "plan": (
            plans,
            [
                "account_id",
                "status",
                "seats",
                "assigned",
                "trial_started_at",
                "trial_ends_at",
                "period_start",
                "period_end",
                "pending_invoice_id",
                "pending_seats",
                "created_at",
                "updated_at",
            ],
        ),
        "assignment": (assignments, ["account_id", "user_id", "assigned_at", "assigned_by"]),
        "invoice": (
            invoices,
            [
                "id",
                "account_id",
                "kind",
                "status",
                "currency",
                "total",
                "seats",
                "period_start",
                "period_end",
                "payment_method",
                "request_key",
                "created_by",
                "created_at",
                "paid_at",
                "charge_id",
                "failure_reason",
                "sequence",
                "number",
            ],
        ),
        "invoice_counter": (counters, ["account_id", "last"]),
        "invoice_line": (
            lines,
            [
                "invoice_id",
                "position",
                "description",
                "quantity",
                "unit_price",
                "amount",
                "period_start",
                "period_end",
            ],
        ),
        "event": (events, ["id", "account_id", "type", "actor", "at", "data"]),
    }
    async with conn.transaction():
        for table, (rows, columns) in tables.items():
            await conn.copy_records_to_table(table, records=rows, columns=columns)
    await conn.execute("ANALYZE")
    return {table: len(rows) for table, (rows, _) in tables.items()}


async def reset(conn: asyncpg.Connection, shape: Shape) -> None:
    """Undo what a load phase left: extra agents, purchased seats, pending purchases."""
    await conn.execute(f"DELETE FROM assignment WHERE assigned_by <> '{SEED_ACTOR}'")
    await conn.execute(
        "UPDATE plan SET assigned = (SELECT count(*) FROM assignment a"
        " WHERE a.account_id = plan.account_id), pending_invoice_id = NULL,"
        " pending_seats = NULL, status = 'active',"
        " seats = CASE account_id WHEN $1 THEN $3::bigint WHEN $2 THEN $4::bigint"
        " ELSE $5::bigint END",
        BIG,
        SMALL,
        BIG_SEATS,
        SMALL_SEATS,
        SEATS_PER_ACCOUNT,
    )
