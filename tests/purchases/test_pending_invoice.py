"""The pending invoice of a purchase, written with its line, the plan's note and its first
attempt (one statement on PostgreSQL, one each on SQLite): the same rows on both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Api, problem


async def test_a_purchase_writes_its_invoice_line_note_and_attempt_together(
    api: Api, sql: Callable[..., Any]
) -> None:
    r = await api.buy(5, key="k-together")
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    assert await sql(
        "SELECT i.status, i.total, i.seats, l.position, l.quantity, l.amount, a.number, "
        "a.gateway_key, a.amount FROM invoice i JOIN invoice_line l ON l.invoice_id = i.id "
        "JOIN charge_attempt a ON a.invoice_id = i.id"
    ) == [("paid", invoice["total"], 5, 0, 5, invoice["total"], 1, invoice["id"], invoice["total"])]
    # The plan's note of the pending invoice was cleared by its settlement.
    assert await sql(
        "SELECT seats, pending_invoice_id, pending_seats FROM plan WHERE account_id = 'acme'"
    ) == [(5, None, None)]


async def test_a_retry_after_its_key_was_purged_writes_nothing_more(
    api: Api, sql: Callable[..., Any]
) -> None:
    """The stored answer gone (purged), the retry of a declined purchase is allowed by the
    rules again: its invoice insert meets the request's key, so no second invoice, line, note
    or attempt is written, and the answer is derived from the first invoice."""
    assert (await api.put_account("acme", payment_method="pm_decline_card")).status_code == 200
    first = await api.buy(5, key="k-declined")
    body = problem(first, 402, "payment_declined")
    await sql("DELETE FROM idempotency_key")
    again = problem(await api.buy(5, key="k-declined"), 402, "payment_declined")
    assert again["invoice_id"] == body["invoice_id"]
    await sql("DELETE FROM idempotency_key")
    problem(await api.buy(6, key="k-declined"), 422, "idempotency_key_reused")
    assert await sql("SELECT count(*) FROM invoice") == [(1,)]
    assert await sql("SELECT count(*) FROM invoice_line") == [(1,)]
    assert await sql("SELECT count(*) FROM charge_attempt") == [(1,)]
    assert await sql("SELECT pending_invoice_id FROM plan WHERE account_id = 'acme'") == [(None,)]


@pytest.mark.settings(prices={"USD": 1})
async def test_a_purchase_with_nothing_to_charge_writes_no_attempt_and_is_paid(
    api: Api, sql: Callable[..., Any]
) -> None:
    # 1 seat at 1 cent a month for 10 of 30 days rounds to 0: nothing to send the gateway.
    r = await api.buy(1, key="k-free")
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    assert (invoice["status"], invoice["total"]) == ("paid", 0)
    assert await sql("SELECT count(*) FROM charge_attempt") == [(0,)]
    assert await sql("SELECT count(*) FROM invoice_line") == [(1,)]
    assert await sql("SELECT seats, pending_invoice_id FROM plan WHERE account_id = 'acme'") == [
        (1, None)
    ]
