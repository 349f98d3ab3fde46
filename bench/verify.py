"""``seats verify`` on one account with many agents: how long each check takes.

    SEATS_DATABASE_URL=sqlite+aiosqlite:////tmp/verify.db .venv/bin/python -m bench.verify 100000
    scripts/with-postgres sh -c '.venv/bin/python -m bench.verify 100000 --url "$TEST_DATABASE_URL"'

The database is migrated and must hold no account ``big`` yet (use a throwaway one). The
account is written in bulk (Core inserts, not the API): an expired trial, so that its agents
may outnumber its seats, with every agent's ``agent.assigned`` event, as the service writes
them. Prints the seconds of each check and of the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cli import migrate
from app.config import Settings
from app.db import Database
from app.directory.models import Account, User
from app.ledger.models import Event
from app.seats.models import Assignment, Plan
from app.verify import CHECKS, run_check

ACCOUNT = "big"
CHUNK = 5_000
T0 = datetime(2026, 11, 1, tzinfo=UTC)


async def seed_agents(conn: AsyncConnection, agents: int, account_id: str = ACCOUNT) -> None:
    """One account whose trial expired with ``agents`` agents, each with its event."""
    await conn.execute(
        insert(Account),
        [
            {
                "id": account_id,
                "name": "Big",
                "billing_cycle": "monthly",
                "billing_anchor": date(2026, 11, 1),
                "payment_method": "pm_card_visa",
                "currency": "USD",
                "created_at": T0,
                "updated_at": T0,
            }
        ],
    )
    await conn.execute(
        insert(Plan),
        [
            {
                "account_id": account_id,
                "status": "trial_expired",
                "seats": 0,
                "assigned": agents,
                "trial_started_at": T0,
                "trial_ends_at": T0 + timedelta(days=14),
                "created_at": T0,
                "updated_at": T0,
            }
        ],
    )
    for first in range(0, agents, CHUNK):
        ids = [f"u{n}" for n in range(first, min(first + CHUNK, agents))]
        role = lambda n: "primary_admin" if n == "u0" else "user"  # noqa: E731
        at = T0 + timedelta(minutes=1)
        await conn.execute(
            insert(User),
            [
                {
                    "account_id": account_id,
                    "id": u,
                    "email": f"{u}@big.test",
                    "name": u,
                    "role": role(u),
                    "created_at": T0,
                    "updated_at": T0,
                }
                for u in ids
            ],
        )
        await conn.execute(
            insert(Assignment),
            [
                {"account_id": account_id, "user_id": u, "assigned_at": at, "assigned_by": "u0"}
                for u in ids
            ],
        )
        await conn.execute(
            insert(Event),
            [
                {
                    "id": f"evt_{account_id}_{u}",
                    "account_id": account_id,
                    "type": "agent.assigned",
                    "actor": "user:u0",
                    "at": at,
                    "data": {"user_id": u, "by": "u0"},
                }
                for u in ids
            ],
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agents", type=int, nargs="?", default=100_000)
    parser.add_argument("--url", default=os.environ.get("SEATS_DATABASE_URL"))
    args = parser.parse_args()
    await asyncio.to_thread(migrate, Settings(database_url=args.url, jwt_secret="b" * 32))
    db = Database(args.url)
    try:
        started = time.perf_counter()
        async with db.engine.begin() as conn:
            await seed_agents(conn, args.agents)
        print(f"seeded {args.agents} agents in {time.perf_counter() - started:.1f} s")
        async with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("ANALYZE"))
            total = 0.0
            for name, query in CHECKS.items():
                started = time.perf_counter()
                rows = await run_check(conn, query)
                took = time.perf_counter() - started
                total += took
                print(f"{took:8.3f} s  {name}{'  FAIL' if rows else ''}")
        print(f"{total:8.3f} s  all {len(CHECKS)} checks ({conn.dialect.name})")
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
