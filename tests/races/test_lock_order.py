"""SPEC §7: one lock order (the plan row first), so directory writes racing seat writes never
deadlock into a 500. Runs against ``seats serve --workers 2`` on PostgreSQL.

Removing a user frees its seat: it used to lock the account and then the plan, while an
assignment locks the plan and then takes a key-share lock on the account (the foreign keys of
the rows it inserts), so the two waited on each other until PostgreSQL killed one.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.conftest import PG_URL, SECRET, Api
from tests.races.conftest import assert_invariants, statuses

pytestmark = pytest.mark.skipif(not PG_URL, reason="race tests need PostgreSQL")

USERS = 60

# Every answer a request of this race may give on purpose.
EXPECTED = {
    (201, None),  # assigned, or a user created
    (200, None),  # a user updated, or already an agent
    (204, None),  # a user removed
    (404, "user_not_found"),  # assigning a user that was removed first
    (409, "no_empty_seat"),  # the trial's 20 seats are taken
}


def seats_verify(database_url: str) -> subprocess.CompletedProcess[str]:
    """Run the ``seats verify`` command against the test database."""
    env = {**os.environ, "SEATS_DATABASE_URL": database_url, "SEATS_JWT_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def delete_user(api: Api, user_id: str) -> httpx.Response:
    return await api.client.delete(
        f"/internal/v1/accounts/acme/users/{user_id}", headers=api.as_service()
    )


async def test_s7_user_removals_racing_assigns_never_answer_500(
    live: Api, live_settings: Settings, database_url: str, sql: Callable[..., Any]
) -> None:
    # Before the fix every deadlock cost PostgreSQL's deadlock_timeout (1 s) to break, and a
    # queue of them took longer than the fixture's 30 s: wait long enough to count the 500s.
    live.client.timeout = httpx.Timeout(120)
    assert (await live.start_trial()).status_code == 201
    users = await live.add_users(USERS)
    others = await live.add_users(USERS // 2, prefix="w")
    requests = [
        *(live.assign(u, user="bob") for u in users),
        *(delete_user(live, u) for u in users),
        *(live.put_user("acme", w, "user") for w in others),  # updates of existing users
        *(live.put_user("acme", f"n{i}", "user") for i in range(USERS // 2)),  # new users
    ]
    random.Random(9).shuffle(requests)

    responses = list(await asyncio.gather(*requests))

    counts = statuses(responses)
    print(f"\nanswers of {len(responses)} racing requests: {counts}")
    unexpected = {k: n for k, n in counts.items() if k not in EXPECTED}
    # A 503 database_conflict is allowed by §7 (a second conflict in a row), but never a 500.
    assert set(unexpected) <= {(503, "database_conflict")}, unexpected
    assert unexpected.get((503, "database_conflict"), 0) <= len(responses) // 20, counts
    assert counts.get((204, None)) == USERS, counts  # every removal went through
    for r in responses:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"

    [(assigned,)] = await sql("SELECT assigned FROM plan WHERE account_id = 'acme'")
    [(rows,)] = await sql("SELECT COUNT(*) FROM assignment WHERE account_id = 'acme'")
    assert assigned == rows == 0  # every user that got a seat was then removed, or never got one
    [(left,)] = await sql("SELECT COUNT(*) FROM account_user WHERE id LIKE 'u%'")
    assert left == 0
    await assert_invariants(live_settings)
    verified = seats_verify(database_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
