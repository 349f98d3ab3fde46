"""Issue 13: an assignment and an unassignment are at most 4 round trips to PostgreSQL (BEGIN,
the plan's lock with the caller's role, the write, COMMIT), webhooks included.

Counted on the wire, as the driver sends them, whichever way the app sends them (its session
or straight on the driver): the app's database goes through a loopback relay that reads the
client's messages, where a round trip is a simple query (BEGIN, COMMIT, ROLLBACK) or an
extended-protocol Sync. The counted requests use a clock that reads nothing, as the system
clock, stopped at the fixture's time: the test clock is a table, one more read that production
does not make, and the wall clock's date would end the fixture's trial.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from app.db import Database
from tests.conftest import NOW, PG_URL, Api, FixedClock, postgres_only
from tests.webhooks.conftest import create_endpoint

pytestmark = postgres_only

MAX_ROUND_TRIPS = 4
PROTOCOL_3 = 196608  # the startup message's protocol version, after which messages are typed


class WireRelay:
    """Relays loopback connections to PostgreSQL and notes the client's round trips while
    ``counting``: a Query's text, or at a Sync the text of the statement last parsed (a
    statement prepared earlier is only bound: ``(prepared)``)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.counting = False
        self.sent: list[str] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def down() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        task = asyncio.create_task(down())
        buffer, typed, parsed = b"", False, "(prepared)"
        while data := await reader.read(65536):
            up_writer.write(data)
            await up_writer.drain()
            buffer += data
            while True:
                head = 1 if typed else 0
                if len(buffer) < head + 4:
                    break
                length = int.from_bytes(buffer[head : head + 4], "big")
                if len(buffer) < head + length:
                    break
                kind, body = buffer[:head], buffer[head + 4 : head + length]
                buffer = buffer[head + length :]
                if not typed:
                    typed = int.from_bytes(body[:4], "big") == PROTOCOL_3
                elif kind == b"P":
                    parsed = body.split(b"\0")[1].decode()
                elif kind in (b"Q", b"S") and self.counting:
                    text = body.split(b"\0")[0].decode() if kind == b"Q" else parsed
                    self.sent.append(" ".join(text.split())[:60])
                if kind == b"S":
                    parsed = "(prepared)"
        up_writer.close()
        await task


@asynccontextmanager
async def app_through_relay(app: Any) -> AsyncIterator[WireRelay]:
    """The app's database, for the block, behind a ``WireRelay``: one connection, so that
    the requests before the counted ones prepared every statement on it."""
    url = make_url(PG_URL or "")
    relay = WireRelay(url.host or "127.0.0.1", url.port or 5432)
    server = await asyncio.start_server(relay.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    own, app.state.db = (
        app.state.db,
        Database(
            url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False), pool_size=1
        ),
    )
    try:
        yield relay
    finally:
        await app.state.db.dispose()
        app.state.db = own
        server.close()


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
    async with app_through_relay(app) as relay:
        # Once first: a connection's first use of a statement also prepares it (asyncpg).
        assert (await api.assign("carol")).status_code == 201
        assert (await api.unassign("carol")).status_code == 204

        for request, status in ((api.assign, 201), (api.unassign, 204), (api.assign, 201)):
            relay.sent.clear()
            relay.counting = True
            r = await request("carol")
            relay.counting = False
            sent = relay.sent
            assert r.status_code == status, r.text
            assert len(sent) <= MAX_ROUND_TRIPS, sent
            assert sent[0].startswith("BEGIN") and sent[-1].startswith("COMMIT"), sent

    # Two assignments to both endpoints, the unassignment to the one that takes every type.
    rows = await sql(
        "SELECT d.event_type, COUNT(*) FROM webhook_delivery d JOIN event e ON e.id = d.event_id "
        "WHERE e.type LIKE 'agent.%' GROUP BY d.event_type ORDER BY d.event_type"
    )
    assert [tuple(r) for r in rows] == [("agent.assigned", 6), ("agent.unassigned", 2)]
