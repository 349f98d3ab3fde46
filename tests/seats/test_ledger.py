"""R11: every change of money is an invoice, every change of seats or agents an event with its
actor; the database itself keeps both append-only (one-way invoice status aside)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from tests.conftest import NOW, Api, problem

Sql = Callable[..., Any]


async def walk(api: Api, what: str, limit: int, user: str | None = None) -> list[dict[str, Any]]:
    """Every item of a list, page by page, checking the page size on the way."""
    items: list[dict[str, Any]] = []
    url = f"/{what}?limit={limit}"
    for _ in range(100):
        r = await api.call("GET", "acme", url, user=user)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["data"]) <= limit
        items += page["data"]
        if page["next_cursor"] is None:
            return items
        assert len(page["data"]) == limit
        url = f"/{what}?limit={limit}&cursor={page['next_cursor']}"
    raise AssertionError("the pages never ended")


async def three_purchases(api: Api) -> list[str]:
    ids = []
    for day, seats in enumerate((5, 7, 9)):
        await api.set_clock(NOW + timedelta(days=day))
        r = await api.buy(seats)
        assert r.status_code == 201, r.text
        ids.append(r.json()["invoice"]["id"])
    return ids


async def test_r11_invoices_newest_first_with_pages(api: Api) -> None:
    ids = await three_purchases(api)
    listed = await walk(api, "invoices", limit=2, user="bob")
    assert [i["id"] for i in listed] == list(reversed(ids))
    assert [i["lines"][0]["quantity"] for i in listed] == [2, 2, 5]
    assert await walk(api, "invoices", limit=100) == listed
    for invoice in listed:
        r = await api.call("GET", "acme", f"/invoices/{invoice['id']}", user="alice")
        assert r.status_code == 200, r.text
        assert r.json() == invoice


async def test_r11_invoice_of_another_account_is_not_found(api: Api) -> None:
    r = await api.buy(5, account_id="globex", user="gina")
    assert r.status_code == 201, r.text
    theirs = r.json()["invoice"]["id"]
    problem(
        await api.call("GET", "acme", f"/invoices/{theirs}", user="alice"), 404, "invoice_not_found"
    )
    problem(await api.call("GET", "acme", f"/invoices/{theirs}"), 404, "invoice_not_found")
    unknown = "inv_" + "0" * 26
    problem(
        await api.call("GET", "acme", f"/invoices/{unknown}", user="bob"), 404, "invoice_not_found"
    )
    # a malformed id is as unknown as a well-formed one: one answer for clients to handle
    for malformed in ("nope", "inv_" + "0" * 25, "INV_" + "0" * 26, "inv_" + "0" * 300):
        problem(
            await api.call("GET", "acme", f"/invoices/{malformed}", user="bob"),
            404,
            "invoice_not_found",
        )
    assert await walk(api, "invoices", limit=10) == []


async def test_r11_every_change_is_an_event_with_its_actor(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    await api.set_clock(NOW + timedelta(minutes=1))
    assert (await api.assign("carol", user="bob")).status_code == 201
    await api.set_clock(NOW + timedelta(minutes=2))
    bought = await api.buy(5)
    assert bought.status_code == 201
    await api.set_clock(NOW + timedelta(minutes=3))
    assert (await api.remove(3)).status_code == 200
    await api.set_clock(NOW + timedelta(minutes=4))
    assert (await api.unassign("carol", user="bob")).status_code == 204

    events = await walk(api, "events", limit=2, user="bob")
    assert [e["type"] for e in events] == [
        "agent.unassigned",
        "seats.removed",
        "seats.purchased",
        "agent.assigned",
        "trial.started",
    ]
    assert len({e["id"] for e in events}) == 5
    assert all(e["id"].startswith("evt_") for e in events)
    assert [datetime.fromisoformat(e["at"]) for e in events] == [
        NOW + timedelta(minutes=m) for m in (4, 3, 2, 1, 0)
    ]
    unassigned, removed, purchased, assigned, trial = events
    assert [e["actor"] for e in events] == [
        "user:bob",
        "user:alice",
        "user:alice",
        "user:bob",
        "user:alice",
    ]
    assert trial["data"]["seats_before"] == 0 and trial["data"]["seats_after"] == 20
    assert assigned["data"] == {"user_id": "carol", "assigned_before": 0, "assigned_after": 1}
    assert purchased["data"] == {
        "seats_before": 20,
        "seats_after": 5,
        "invoice_id": bought.json()["invoice"]["id"],
        "amount": 3167,
    }
    assert removed["data"] == {"seats_before": 5, "seats_after": 3}
    assert unassigned["data"] == {"user_id": "carol", "assigned_before": 1, "assigned_after": 0}


async def test_r11_events_of_the_billing_run_name_the_system(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    await api.set_clock(datetime(2026, 12, 1, tzinfo=UTC))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.json()["renewals_paid"] == 1
    renewed = (await walk(api, "events", limit=100))[0]
    assert (renewed["type"], renewed["actor"]) == ("plan.renewed", "system:billing")


# --- the database keeps the ledger append-only ----------------------------------------------


@pytest.fixture
async def paid_invoice(api: Api) -> str:
    r = await api.buy(5)
    assert r.status_code == 201, r.text
    invoice_id: str = r.json()["invoice"]["id"]
    return invoice_id


async def pending_invoice(api: Api, account_id: str = "acme", user: str = "alice") -> str:
    r = await api.put_account(account_id, payment_method="pm_unavailable")
    assert r.status_code == 200, r.text
    body = problem(await api.buy(5, account_id=account_id, user=user), 503, "payment_pending")
    invoice_id: str = body["invoice_id"]
    return invoice_id


async def refused(sql: Sql, statement: str, **params: Any) -> None:
    try:
        await sql(statement, **params)
    except DBAPIError:
        return
    raise AssertionError(f"the database accepted {statement!r}")


async def test_r11_database_refuses_rewriting_the_ledger(
    api: Api, sql: Sql, paid_invoice: str
) -> None:
    before = [(await api.call("GET", "acme", p)).json() for p in ("/invoices", "/events")]
    for statement in (
        "UPDATE event SET actor = 'user:mallory'",
        "UPDATE event SET data = '{}'",
        "DELETE FROM event",
        "UPDATE invoice_line SET amount = 1",
        "DELETE FROM invoice_line",
        "DELETE FROM invoice",
        "UPDATE invoice SET total = 1",
        "UPDATE invoice SET status = 'pending', paid_at = NULL",
        "UPDATE invoice SET status = 'failed'",
        "UPDATE invoice SET charge_id = 'ch_other'",
    ):
        await refused(sql, statement)
    after = [(await api.call("GET", "acme", p)).json() for p in ("/invoices", "/events")]
    assert after == before


async def test_r11_database_refuses_rewriting_charge_attempts(api: Api, sql: Sql) -> None:
    assert (await api.buy(5)).status_code == 201
    await api.set_clock(datetime(2026, 12, 1, tzinfo=UTC))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.json()["renewals_paid"] == 1
    # The purchase's attempt and the renewal's, each with its outcome.
    [(attempts,)] = await sql("SELECT COUNT(*) FROM charge_attempt")
    [(outcomes,)] = await sql("SELECT COUNT(*) FROM charge_outcome WHERE outcome = 'succeeded'")
    assert (attempts, outcomes) == (2, 2)
    await refused(sql, "UPDATE charge_attempt SET payment_method = 'pm_other'")
    await refused(sql, "DELETE FROM charge_attempt")
    await refused(sql, "UPDATE charge_outcome SET outcome = 'declined'")
    await refused(sql, "DELETE FROM charge_outcome")


async def test_r11_pending_invoice_may_only_become_paid_or_failed(api: Api, sql: Sql) -> None:
    to_pay = await pending_invoice(api)
    to_fail = await pending_invoice(api, "globex", "gina")
    where = "WHERE id = :id"
    # Even a pending invoice keeps its amount, seats and period...
    await refused(sql, f"UPDATE invoice SET total = 1 {where}", id=to_pay)
    await refused(
        sql,
        f"UPDATE invoice SET status = 'paid', paid_at = created_at, total = 1 {where}",
        id=to_pay,
    )
    await refused(sql, f"UPDATE invoice SET seats = 500 {where}", id=to_pay)
    await refused(sql, f"DELETE FROM invoice {where}", id=to_pay)
    r = await api.call("GET", "acme", f"/invoices/{to_pay}")
    assert (r.json()["status"], r.json()["total"]) == ("pending", 3167)
    # ... and may change once, to paid or failed (the ``sql`` fixture commits).
    await sql(
        f"UPDATE invoice SET status = 'paid', paid_at = created_at, charge_id = 'ch_x' {where}",
        id=to_pay,
    )
    await sql(
        f"UPDATE invoice SET status = 'failed', failure_reason = 'card_declined' {where}",
        id=to_fail,
    )
    for statement in (
        "UPDATE invoice SET status = 'pending', paid_at = NULL, charge_id = NULL",
        "UPDATE invoice SET status = 'failed'",
        "UPDATE invoice SET status = 'paid', paid_at = created_at",
        "UPDATE invoice SET failure_reason = 'other'",
    ):
        await refused(sql, f"{statement} {where}", id=to_pay)
        await refused(sql, f"{statement} {where}", id=to_fail)
    paid = (await api.call("GET", "acme", f"/invoices/{to_pay}")).json()
    assert (paid["status"], paid["charge_id"]) == ("paid", "ch_x")
    failed = (await api.call("GET", "globex", f"/invoices/{to_fail}")).json()
    assert (failed["status"], failed["failure_reason"]) == ("failed", "card_declined")
