"""The service with the ``http`` gateway and a real payments server (SPEC §6): a purchase whose
charge outcome is unknown stays pending and is completed, with the same gateway key, by a retry
or by the billing run; nothing is ever charged twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import Api, problem
from tests.payments_server import PaymentsServer
from tests.renewals.conftest import PRICE, invoices, pay, prorated, run_billing

KEY = "purchase-5-seats"
DUE = prorated(5, 1, 10, 30)  # 5 seats on 2026-11-21 in 2026-11-01..2026-12-01


async def pending_purchase(api: Api) -> str:
    """Buy 5 seats while the payments server gives no definitive answer: the invoice id."""
    body = problem(await api.buy(5, key=KEY), 503, "payment_pending")
    invoice_id: str = body["invoice_id"]
    summary = await api.summary()
    assert summary["status"] == "none" and summary["seats"] == 0
    (pending,) = await invoices(api)
    assert pending["id"] == invoice_id and pending["status"] == "pending"
    assert pending["total"] == DUE
    # A second purchase waits for the first.
    problem(await api.buy(6), 409, "purchase_in_progress")
    return invoice_id


async def assert_completed_once(
    api: Api, server: PaymentsServer, invoice_id: str
) -> dict[str, Any]:
    """The purchase is paid, its seats applied once, and the server holds exactly one charge."""
    (charge,) = server.charges_for(invoice_id)
    assert charge["amount"] == DUE
    assert charge["payment_method"] == "pm_card_visa"
    (invoice,) = await invoices(api)
    assert invoice["id"] == invoice_id
    assert invoice["status"] == "paid"
    assert invoice["charge_id"] == charge["id"]
    summary = await api.summary()
    assert summary["status"] == "active" and summary["seats"] == 5
    assert len(server.charges) == 1
    return invoice


@pytest.mark.parametrize("outage", ["error_before_charge", "stopped"])
async def test_pending_purchase_completed_by_billing_run(
    http_api: Api, payments_server: PaymentsServer, outage: str
) -> None:
    api, server = http_api, payments_server
    if outage == "stopped":
        server.stop()
    else:
        server.fail_next(3, outage)  # every attempt the gateway makes
    invoice_id = await pending_purchase(api)
    assert server.charges == []
    if outage == "stopped":
        report = await run_billing(api)  # still down: nothing settles, nothing is lost
        assert report["charges_unavailable"] == 1 and report["purchases_completed"] == 0
        server.start()
    report = await run_billing(api)
    assert report["purchases_completed"] == 1
    assert report["purchases_failed"] == 0
    await assert_completed_once(api, server, invoice_id)
    # The original request, retried with its key, answers with the paid invoice: no new charge.
    r = await api.buy(5, key=KEY)
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["id"] == invoice_id
    assert r.json()["invoice"]["status"] == "paid"
    assert r.json()["summary"]["seats"] == 5
    assert len(server.charges) == 1
    # SPEC §5: the key is finished now; the next retry replays it (never 409 in use).
    again = await api.buy(5, key=KEY)
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == r.json()
    assert (await run_billing(api))["purchases_completed"] == 0
    (purchased,) = [
        e
        for e in (await api.call("GET", "acme", "/events")).json()["data"]
        if e["type"] == "seats.purchased"
    ]
    assert purchased["actor"] == "system:billing"


async def test_s5_purchase_completed_by_pay_finishes_its_key(
    http_api: Api, payments_server: PaymentsServer
) -> None:
    api, server = http_api, payments_server
    server.stop()
    invoice_id = await pending_purchase(api)
    server.start()
    paid = await pay(api, invoice_id)
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    await assert_completed_once(api, server, invoice_id)
    first = await api.buy(5, key=KEY)
    assert first.status_code == 201, first.text
    assert first.json()["invoice"]["id"] == invoice_id
    again = await api.buy(5, key=KEY)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert len(server.charges) == 1


async def test_charged_then_timed_out_retry_settles_with_same_key(
    http_api: Api, payments_server: PaymentsServer
) -> None:
    api, server = http_api, payments_server
    server.fail_next(3, "timeout_after_charge")
    invoice_id = await pending_purchase(api)
    (charge,) = server.charges_for(invoice_id)  # the money moved; the answer never arrived
    r = await api.buy(5, key=KEY)
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["id"] == invoice_id
    assert r.json()["invoice"]["charge_id"] == charge["id"]
    await assert_completed_once(api, server, invoice_id)
    keys = {q.headers["idempotency-key"] for q in server.received if q.method == "POST"}
    assert keys == {invoice_id}


@pytest.mark.parametrize("fault", ["timeout_after_charge", "error_after_charge"])
async def test_charged_then_failed_billing_run_settles_once(
    http_api: Api, payments_server: PaymentsServer, fault: str
) -> None:
    api, server = http_api, payments_server
    server.fail_next(3, fault)
    invoice_id = await pending_purchase(api)
    assert len(server.charges_for(invoice_id)) == 1
    report = await run_billing(api)
    assert report["purchases_completed"] == 1
    invoice = await assert_completed_once(api, server, invoice_id)
    assert invoice["charge_id"] == server.charges_for(invoice_id)[0]["id"]


async def test_r9_renewal_waits_for_a_pending_purchase(
    http_api: Api, payments_server: PaymentsServer
) -> None:
    """A purchase still pending when its period ends is settled before the renewal, so the
    next period is billed for the total it bought (the added seats are not left unbilled)."""
    api, server = http_api, payments_server
    assert (await api.buy(2)).status_code == 201
    # Within SEATS_PENDING_PURCHASE_HOURS of the period's end, so it is not voided (R14).
    await api.set_clock(datetime(2026, 11, 30, 12, tzinfo=UTC))
    server.stop()
    body = problem(await api.buy(5, key=KEY), 503, "payment_pending")
    await api.set_clock(datetime(2026, 12, 1, tzinfo=UTC))
    report = await run_billing(api)  # still down: neither the purchase nor the renewal
    assert report["renewals_invoiced"] == 0 and report["charges_unavailable"] == 1
    assert await invoices(api, kind="renewal") == []
    server.start()
    report = await run_billing(api)
    assert report["purchases_completed"] == 1
    assert report["renewals_invoiced"] == 1 and report["renewals_paid"] == 1
    _, purchase, renewal = await invoices(api)
    assert purchase["id"] == body["invoice_id"] and purchase["status"] == "paid"
    assert purchase["total"] == prorated(3, 1, 1, 30)  # 3 added seats, Nov 30..Dec 1
    assert renewal["kind"] == "renewal" and renewal["status"] == "paid"
    assert renewal["total"] == 5 * PRICE
    summary = await api.summary()
    assert summary["seats"] == 5
    assert summary["current_period"] == {"start": "2026-12-01", "end": "2027-01-01"}


async def test_declined_purchase_over_http_changes_nothing(
    http_api: Api, payments_server: PaymentsServer
) -> None:
    api, server = http_api, payments_server
    assert (await api.put_account("acme", payment_method="pm_decline_x")).status_code == 200
    body = problem(await api.buy(5), 402, "payment_declined")
    (failed,) = await invoices(api)
    assert failed["id"] == body["invoice_id"] and failed["status"] == "failed"
    assert (await api.summary())["seats"] == 0
    assert server.charges == []
    assert (await run_billing(api))["purchases_completed"] == 0


async def test_r9_renewal_while_payments_down_is_retried_with_same_key(
    http_api: Api, payments_server: PaymentsServer, sql: Any
) -> None:
    api, server = http_api, payments_server
    assert (await api.buy(2)).status_code == 201
    await api.set_clock(datetime(2026, 12, 1, tzinfo=UTC))
    server.fail_next(3, "error_after_charge")
    report = await run_billing(api)
    assert report["renewals_invoiced"] == 1
    assert report["charges_unavailable"] == 1 and report["renewals_paid"] == 0
    (renewal,) = await invoices(api, kind="renewal")
    assert renewal["status"] == "pending"
    assert (await api.summary())["status"] == "active"  # unknown is not declined
    assert len(server.charges_for(renewal["id"])) == 1
    report = await run_billing(api)
    assert report["renewals_paid"] == 1
    (paid,) = await invoices(api, kind="renewal")
    (charge,) = server.charges_for(renewal["id"])
    assert paid["status"] == "paid" and paid["charge_id"] == charge["id"]
    assert charge["amount"] == 2 * PRICE
    rows = await sql(
        "SELECT a.number, a.gateway_key, o.outcome FROM charge_attempt a "
        "LEFT JOIN charge_outcome o ON o.invoice_id = a.invoice_id AND o.number = a.number "
        "WHERE a.invoice_id = :id "
        "ORDER BY a.number",
        id=renewal["id"],
    )
    assert [tuple(r) for r in rows] == [
        (1, renewal["id"], "unavailable"),
        (2, renewal["id"], "succeeded"),
    ]


async def test_r9_card_changed_after_unknown_outcome_is_not_charged_twice(
    http_api: Api, payments_server: PaymentsServer
) -> None:
    """The retry of an attempt whose outcome is unknown resends the same request under the
    same key, even if the account's card changed meanwhile: the first may have gone through."""
    api, server = http_api, payments_server
    assert (await api.buy(2)).status_code == 201
    await api.set_clock(datetime(2026, 12, 1, tzinfo=UTC))
    server.fail_next(3, "error_after_charge")
    await run_billing(api)
    (renewal,) = await invoices(api, kind="renewal")
    assert (await api.put_account("acme", payment_method="pm_card_amex")).status_code == 200
    report = await run_billing(api)
    assert report["renewals_paid"] == 1
    (charge,) = [c for c in server.charges if c["description"].endswith(renewal["id"])]
    assert charge["payment_method"] == "pm_card_visa"
    (paid,) = await invoices(api, kind="renewal")
    assert paid["charge_id"] == charge["id"]


async def test_two_billing_runs_at_once_invoice_each_period_once(
    http_api: Api, payments_server: PaymentsServer, sql: Any
) -> None:
    api, server = http_api, payments_server
    accounts = ["acme", "globex"]
    for n in range(3):
        account_id = f"team{n}"
        assert (await api.put_account(account_id)).status_code == 201
        assert (await api.put_user(account_id, "owner", "primary_admin")).status_code == 201
        accounts.append(account_id)
    for seats, account_id in enumerate(accounts, start=1):
        user = {"acme": "alice", "globex": "gina"}.get(account_id, "owner")
        r = await api.buy(seats, account_id=account_id, user=user)
        assert r.status_code == 201, r.text
    # team2's card is declined from now on: its renewals are charged (and declined) by the
    # runs at the same time too.
    assert (await api.put_account("team2", payment_method="pm_decline_x")).status_code == 200
    # Monthly accounts owe Dec..Apr (5 periods); globex (yearly, anchor 03-15) owes one.
    await api.set_clock(datetime(2027, 4, 20, tzinfo=UTC))
    first, second = await asyncio.gather(
        api.client.post("/internal/v1/billing/run", headers=api.as_service()),
        api.client.post("/internal/v1/billing/run", headers=api.as_service()),
    )
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    reports = [first.json(), second.json()]
    assert reports[0]["errors"] == reports[1]["errors"] == []
    assert sum(r["renewals_invoiced"] for r in reports) == 4 * 5 + 1
    duplicates = await sql(
        "SELECT account_id, period_start, COUNT(*) FROM invoice WHERE kind = 'renewal' "
        "GROUP BY account_id, period_start HAVING COUNT(*) > 1"
    )
    assert duplicates == []
    await run_billing(api)  # whatever one run left to the other, settled now
    renewals = await sql(
        "SELECT id, status, charge_id, total, account_id FROM invoice WHERE kind = 'renewal'"
    )
    assert len(renewals) == 4 * 5 + 1
    for invoice_id, status, charge_id, total, account_id in renewals:
        if account_id == "team2":
            assert status == "pending" and server.charges_for(invoice_id) == []
            continue
        (charge,) = server.charges_for(invoice_id)
        assert status == "paid" and charge_id == charge["id"] and total == charge["amount"]
    keys = [c["idempotency_key"] for c in server.charges]
    assert len(keys) == len(set(keys)) == len(renewals) - 5 + len(accounts)
    # Each declined renewal was declined once under its first key, whichever run asked.
    declined = await sql(
        "SELECT a.invoice_id, a.gateway_key, o.outcome FROM charge_attempt a "
        "JOIN charge_outcome o ON o.invoice_id = a.invoice_id AND o.number = a.number "
        "JOIN invoice i ON i.id = a.invoice_id "
        "WHERE i.account_id = 'team2' AND i.kind = 'renewal'"
    )
    assert sorted((r[1], r[2]) for r in declined) == sorted(
        (r[0], "declined") for r in renewals if r[4] == "team2"
    )
    summary = await api.summary("team2", user="owner")
    assert summary["status"] == "past_due"
