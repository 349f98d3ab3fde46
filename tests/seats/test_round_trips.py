"""Issue 13: an assignment and an unassignment are at most 4 round trips to PostgreSQL (BEGIN,
the plan's lock with the caller's role, the write, COMMIT), webhooks included.

Counted on the app's own engine, as the driver sends them: every statement, and every BEGIN,
COMMIT and ROLLBACK. The counted requests use a clock that reads nothing, as the system clock,
stopped at the fixture's time: the test clock is a table, one more read that production does
not make, and the wall clock's date would end the fixture's trial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from tests.conftest import NOW, Api, FixedClock, postgres_only
from tests.webhooks.conftest import create_endpoint

pytestmark = postgres_only

MAX_ROUND_TRIPS = 4


@contextmanager
def round_trips(app: Any) -> Iterator[list[str]]:
    """The round trips sent on the app's engine inside the block, as statement texts."""
    sent: list[str] = []
    engine = app.state.db.engine.sync_engine

    def statement(conn: Any, cursor: Any, text: str, *args: Any) -> None:
        sent.append(" ".join(text.split())[:60])

    def named(name: str) -> Callable[..., None]:
        return lambda *_: sent.append(name)

    listeners = [
        ("before_cursor_execute", statement),
        ("begin", named("BEGIN")),
        ("commit", named("COMMIT")),
        ("rollback", named("ROLLBACK")),
    ]
    for name, fn in listeners:
        event.listen(engine, name, fn)
    try:
        yield sent
    finally:
        for name, fn in listeners:
            event.remove(engine, name, fn)


@pytest.mark.settings(webhook_allow_hosts="127.0.0.1")
async def test_assign_and_unassign_take_at_most_4_round_trips(
    api: Api, app: Any, sql: Callable[..., Any]
) -> None:
    assert (await api.start_trial()).status_code == 201
    # An endpoint that wants the events: its deliveries must not cost a round trip either.
    await create_endpoint(api, "http://127.0.0.1:9/hook", event_types=["agent.assigned"])
    await create_endpoint(api, "http://127.0.0.1:9/all")
    # A clock that reads nothing (as the system clock), stopped at the fixture's time: the
    # counted requests must not depend on the calendar (the trial started at NOW ends).
    app.state.clock = FixedClock(NOW)
    # Once first: a connection's first use of a statement also prepares it (asyncpg).
    assert (await api.assign("carol")).status_code == 201
    assert (await api.unassign("carol")).status_code == 204

    for request, status in ((api.assign, 201), (api.unassign, 204), (api.assign, 201)):
        with round_trips(app) as sent:
            r = await request("carol")
        assert r.status_code == status, r.text
        assert len(sent) <= MAX_ROUND_TRIPS, sent
        assert sent[0] == "BEGIN" and sent[-1] == "COMMIT", sent

    # Two assignments to both endpoints, the unassignment to the one that takes every type.
    rows = await sql(
        "SELECT d.event_type, COUNT(*) FROM webhook_delivery d JOIN event e ON e.id = d.event_id "
        "WHERE e.type LIKE 'agent.%' GROUP BY d.event_type ORDER BY d.event_type"
    )
    assert [tuple(r) for r in rows] == [("agent.assigned", 6), ("agent.unassigned", 2)]
