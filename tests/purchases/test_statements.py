"""How many statements a purchase and a quote send to PostgreSQL (issue 13).

Counted on the app's own engines: every statement the driver runs, plus BEGIN, COMMIT and
ROLLBACK of each transaction (an autocommit read sends none). The test clock's reads are left
out: a production clock reads nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.conftest import Api, postgres_only

pytestmark = postgres_only


@contextmanager
def statements(app: Any) -> Iterator[list[str]]:
    """The statements the app sends to the database while the block runs, in order: on
    its one engine (its single reads' autocommit view shares the engine's events)."""
    engines = [app.state.db.engine.sync_engine]
    sent: list[str] = []

    def autocommit(conn: Any) -> bool:
        return bool(getattr(conn.connection.dbapi_connection, "autocommit", False))

    def on_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "test_clock" not in statement:
            sent.append(" ".join(statement.split()))

    def on_begin(conn: Any) -> None:
        if not autocommit(conn):
            sent.append("BEGIN")

    def on_commit(conn: Any) -> None:
        if not autocommit(conn):
            sent.append("COMMIT")

    def on_rollback(conn: Any) -> None:
        if not autocommit(conn):
            sent.append("ROLLBACK")

    listeners = [
        (engine, name, fn)
        for engine in engines
        for name, fn in (
            ("before_cursor_execute", on_execute),
            ("begin", on_begin),
            ("commit", on_commit),
            ("rollback", on_rollback),
        )
    ]
    for engine, name, fn in listeners:
        event.listen(engine, name, fn)
    try:
        yield sent
    finally:
        for engine, name, fn in listeners:
            event.remove(engine, name, fn)


def listing(sent: list[str]) -> str:
    return "\n".join(f"{i:2} {s[:120]}" for i, s in enumerate(sent, 1))


async def _buy_more(api: Api, app: Any) -> list[str]:
    assert (await api.buy(5)).status_code == 201  # a paid plan buying more: the usual case
    with statements(app) as sent:
        r = await api.buy(8)
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["status"] == "paid"
    return sent


async def test_a_purchase_sends_at_most_24_statements(api: Api, app: Any) -> None:
    sent = await _buy_more(api, app)
    # 24: the caller's role (1, a single read); the key claimed (BEGIN, the claim, COMMIT:
    # 3, a write is a transaction, app/db.py); the pending invoice with its
    # first attempt (BEGIN, the plan locked with its account, the invoice's number taken from
    # the account's counter, one statement writing the invoice, its line, the plan's note and
    # the attempt, COMMIT: 5); the charge recorded
    # (BEGIN, the plan locked, the invoice and its attempts read under that lock, the
    # outcome, the invoice paid, the seats raised, the event, the webhook endpoints, COMMIT:
    # 9); the answer's reads (the plan with its account, the outstanding renewal, who asked
    # and the primary admin for the page (§9): 3, single reads); the response stored (BEGIN,
    # 1 UPDATE, COMMIT: 3).
    assert len(sent) <= 24, listing(sent)
    transactions = [i for i, s in enumerate(sent) if s in ("BEGIN", "COMMIT")]
    assert transactions == [1, 3, 4, 8, 9, 17, 21, 23], listing(sent)
    assert sent[6].startswith("INSERT INTO invoice_counter"), listing(sent)
    pending = sent[7]
    assert pending.startswith("WITH written_invoice AS (INSERT INTO invoice"), listing(sent)
    for write in ("INSERT INTO invoice_line", "UPDATE plan", "INSERT INTO charge_attempt"):
        assert write in pending, listing(sent)


async def test_a_quote_sends_six_statements(api: Api, app: Any) -> None:
    assert (await api.buy(5)).status_code == 201
    with statements(app) as sent:
        r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 8})
    assert r.status_code == 201, r.text
    # The caller's role (autocommit), then BEGIN, the plan with its account, the quote, the
    # trim of old quotes, COMMIT.
    assert len(sent) == 6, listing(sent)


async def test_a_quote_preview_sends_two_statements(api: Api, app: Any) -> None:
    assert (await api.buy(5)).status_code == 201
    with statements(app) as sent:
        r = await api.call("GET", "acme", "/quote-preview?seats=8", user="alice")
    assert r.status_code == 200, r.text
    # The caller's role, the plan with its account: both autocommit, no transaction.
    assert sent[0].startswith("SELECT account_user.role") and len(sent) == 2, listing(sent)
