"""R9 for a past-due banner: the summary's ``outstanding_invoice``; ``?status=`` on invoices."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NOW, Api, problem
from tests.renewals.conftest import PRICE, pay, run_billing
from tests.renewals.test_past_due import DEC_1, GOOD, past_due


async def test_no_outstanding_invoice_without_a_declined_renewal(api: Api) -> None:
    assert (await api.summary())["outstanding_invoice"] is None
    assert (await api.start_trial()).status_code == 201
    assert (await api.summary())["outstanding_invoice"] is None
    assert (await api.buy(3)).status_code == 201
    assert (await api.summary())["outstanding_invoice"] is None


async def test_past_due_summary_names_the_invoice_to_pay(api: Api) -> None:
    renewal = await past_due(api)
    summary = await api.summary()
    assert summary["status"] == "past_due"
    assert summary["outstanding_invoice"] == {
        "id": renewal["id"],
        "total": 3 * PRICE,
        "failure_reason": summary["outstanding_invoice"]["failure_reason"],
        "due_since": DEC_1.isoformat().replace("+00:00", "Z"),
        "cancels_at": "2026-12-15T00:00:00Z",  # due_since + SEATS_DUNNING_DAYS
    }
    assert summary["outstanding_invoice"]["failure_reason"]  # the gateway's words
    # Every user of the account reads it, so the banner shows for all of them.
    assert (await api.summary(user="carol"))["outstanding_invoice"]["id"] == renewal["id"]


async def test_due_since_is_the_first_decline_not_the_retry(api: Api) -> None:
    renewal = await past_due(api)
    await api.set_clock(DEC_1 + timedelta(days=2))
    await run_billing(api)  # a second decline, two days later
    outstanding = (await api.summary())["outstanding_invoice"]
    assert outstanding["id"] == renewal["id"]
    assert outstanding["due_since"].startswith("2026-12-01T00:00:00")


async def test_paying_clears_the_outstanding_invoice(api: Api) -> None:
    renewal = await past_due(api)
    assert (await api.put_account("acme", payment_method=GOOD)).status_code == 200
    r = await pay(api, renewal["id"])
    assert r.status_code == 200, r.text
    summary = await api.summary()
    assert (summary["status"], summary["outstanding_invoice"]) == ("active", None)


async def test_invoices_filter_by_status(api: Api) -> None:
    await api.set_clock(NOW)
    renewal = await past_due(api)
    assert (await api.put_account("acme", payment_method="pm_decline_y")).status_code == 200
    problem(await pay(api, renewal["id"]), 402, "payment_declined")

    async def ids(status: str) -> list[tuple[str, str]]:
        r = await api.call("GET", "acme", f"/invoices?status={status}", user="alice")
        assert r.status_code == 200, r.text
        assert r.json()["next_cursor"] is None
        return [(i["kind"], i["status"]) for i in r.json()["data"]]

    assert await ids("pending") == [("renewal", "pending")]
    assert await ids("paid") == [("purchase", "paid")]
    assert await ids("failed") == []
    assert await ids("void") == []
    assert await ids("uncollectible") == []


@pytest.mark.parametrize("status", ["PAID", "open", "", "paid,failed"])
async def test_invoices_filter_refuses_unknown_statuses(api: Api, status: str) -> None:
    r = await api.call("GET", "acme", f"/invoices?status={status}", user="alice")
    assert problem(r, 422, "validation_error")["errors"]


async def test_invoices_filter_pages(api: Api) -> None:
    for day, seats in enumerate((2, 4, 6)):
        await api.set_clock(NOW + timedelta(days=day))
        assert (await api.buy(seats)).status_code == 201
    first = await api.call("GET", "acme", "/invoices?status=paid&limit=2", user="alice")
    body = first.json()
    assert [i["lines"][0]["quantity"] for i in body["data"]] == [2, 2]
    assert body["next_cursor"]
    r = await api.call(
        "GET", "acme", f"/invoices?status=paid&limit=2&cursor={body['next_cursor']}", user="bob"
    )
    assert [i["total"] > 0 for i in r.json()["data"]] == [True]
    assert r.json()["next_cursor"] is None
