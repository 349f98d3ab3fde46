"""R10 with the cache: a cached answer of a trialing plan turns inactive at ``trial_ends_at``
exactly, with no notification (the billing run may not have recorded the end yet, and time
passing changes no row): the cache holds the trial's end, never the answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.auth import Principal
from app.entitlements import EntitlementCache
from app.seats import agents
from app.seats.repository import AgentCheckRow
from tests.conftest import FixedClock

ENDS = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class NoDatabase:
    """Every answer must come from the cache: a read here fails the test."""

    async def read_one(self, *args: Any) -> None:
        raise AssertionError("the check read the database")


async def test_r10_a_cached_trial_answer_ends_exactly_at_the_trials_end() -> None:
    cache = EntitlementCache(ttl=3600, max_entries=10)
    cache.listening()
    row = AgentCheckRow("user", True, True, "trialing", ENDS)
    cache.put("acme", (False, "carol", "bob"), row, cache.token("acme"))
    carol = Principal(subject="carol", account_id="acme")
    clock = FixedClock(ENDS - timedelta(microseconds=1))
    db: Any = NoDatabase()

    before = await agents.check_agent(db, clock, cache, carol, "acme", "bob")
    assert (before.agent, before.active) == (True, True)
    clock.current = ENDS
    at_the_end = await agents.check_agent(db, clock, cache, carol, "acme", "bob")
    assert (at_the_end.agent, at_the_end.active) == (True, False)
