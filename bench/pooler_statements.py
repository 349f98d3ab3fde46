"""How statements are sent behind PgBouncer in transaction mode: which option is correct, and
which is fastest (app/db.py ``pooled_connect_args``; README "Behind a connection pooler").

    scripts/with-postgres .venv/bin/python bench/pooler_statements.py [--ops 3000]

Against the test cluster (migrated here) straight and through a PgBouncer started in
transaction mode (tests/pgbouncer.py; Debian's 1.18 has no ``max_prepared_statements``), each
option runs the agent check's one-row read (``Database.read_one``) and a two-statement
transaction (``Database.transaction``) from ``--concurrency`` tasks sharing one pool of 10:

* ``named``: asyncpg's statement cache and SQLAlchemy's, asyncpg's own names
  (``SEATS_DATABASE_POOLER=none``, the default);
* ``unique``: no caches, each statement prepared under a unique name (SQLAlchemy's
  documented recipe for PgBouncer);
* ``unnamed``: no caches, every statement unnamed, described again for each execution;
* ``kept``: every statement unnamed, its description kept in SQLAlchemy's cache, so each
  execution is one round trip (``SEATS_DATABASE_POOLER=transaction``).

``read_one`` keeps its unnamed statement under all three but ``named``
(``Database._unnamed``): it is the transactions that tell them apart.

It prints operations per second and the errors each option met. Not a test: speed varies with
the machine; the figures go in the report of the change that picks an option.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.cli import migrate
from app.config import Settings
from app.db import Database
from app.directory.models import Account
from app.seats import repository
from app.seats.models import Plan
from tests.pgbouncer import PgBouncer

OPTIONS: dict[str, dict[str, Any]] = {
    "named": {},
    "unique": {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
    },
    "unnamed": {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: "",
    },
    "kept": {
        "statement_cache_size": 0,
        "prepared_statement_name_func": lambda: "",
    },
}


class OptionDatabase(Database):
    """``Database`` with one option's driver arguments instead of the setting's."""

    def __init__(self, url: str, option: str) -> None:
        self.url = url
        self.pooler = "none" if option == "named" else "transaction"
        self.engine = create_async_engine(
            url,
            pool_size=10,
            max_overflow=0,
            hide_parameters=True,
            connect_args={"timeout": 5, "command_timeout": 30, **OPTIONS[option]},
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")


async def run(
    url: str, option: str, ops: int, concurrency: int
) -> tuple[float, float, Counter[str]]:
    db = OptionDatabase(url, option)
    errors: Counter[str] = Counter()
    read = repository._AGENT_CHECK[False]

    async def reads(n: int) -> None:
        for i in range(n):
            try:
                params = {"account_id": f"a{i % 50}", "caller_id": "c", "user_id": "u"}
                await db.read_one(read, params)
            except Exception as exc:
                errors[type(getattr(exc, "orig", exc)).__name__] += 1

    async def transactions(n: int) -> None:
        for i in range(n):
            try:
                async with db.transaction() as session:
                    await session.execute(
                        select(Plan).where(Plan.account_id == f"a{i % 50}").with_for_update()
                    )
                    await session.execute(select(Account).where(Account.id == f"a{i % 50}"))
            except Exception as exc:
                errors[type(getattr(exc, "orig", exc)).__name__] += 1

    per = ops // concurrency
    rates = []
    for work in (reads, transactions):
        await asyncio.gather(*(work(10) for _ in range(concurrency)))  # warm the pool
        start = time.perf_counter()
        await asyncio.gather(*(work(per) for _ in range(concurrency)))
        rates.append(per * concurrency / (time.perf_counter() - start))
    await db.dispose()
    return rates[0], rates[1], errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="the best of this many runs")
    args = parser.parse_args()
    url = os.environ["TEST_DATABASE_URL"]
    migrate(Settings(database_url=url, jwt_secret="x" * 40))
    with PgBouncer(url, default_pool_size=4) as bouncer:
        print(f"PgBouncer {bouncer.version}, transaction mode, 4 server connections")
        print(f"{'target':10} {'option':8} {'read_one/s':>11} {'tx/s':>8}  errors")
        targets = (("direct", url), ("pgbouncer", bouncer.url))
        best: dict[tuple[str, str], list[float]] = {}
        seen: dict[tuple[str, str], Counter[str]] = {}
        # Rounds interleaved, so that a busy moment of the machine hits every option alike.
        for _ in range(args.rounds):
            for target, target_url in targets:
                for option in OPTIONS:
                    rate_read, rate_tx, errors = asyncio.run(
                        run(target_url, option, args.ops, args.concurrency)
                    )
                    old = best.get((target, option), [0.0, 0.0])
                    best[target, option] = [max(old[0], rate_read), max(old[1], rate_tx)]
                    seen.setdefault((target, option), Counter()).update(errors)
        for (target, option), (rate_read, rate_tx) in best.items():
            errors = dict(seen[target, option]) or "-"
            print(f"{target:10} {option:8} {rate_read:11.0f} {rate_tx:8.0f}  {errors}")


if __name__ == "__main__":
    main()
