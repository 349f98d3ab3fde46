"""SPEC §6 "only a decline is a decline", through the service: when the payments service refuses
the request itself (a wrong API key, a wrong URL, a request it cannot read), nothing was charged,
the caller gets ``503 payment_unavailable``, the invoice stays pending, the billing run reports
an error, and no plan goes past due for it. It used to be taken for a decline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import Api, problem
from tests.payments_server import PaymentsServer
from tests.renewals.conftest import invoices, pay, prorated, run_billing

DUE = prorated(5, 1, 10, 30)  # 5 seats on 2026-11-21 in 2026-11-01..2026-12-01


async def billing_run_with_errors(api: Api) -> dict[str, Any]:
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    return report


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_s6_a_refused_purchase_is_payment_unavailable_and_stays_pending(
    http_api: Api, payments_server: PaymentsServer, status: int
) -> None:
    api, server = http_api, payments_server
    server.refuse_next(1, status)
    r = await api.buy(5, key="buy-5")
    body = problem(r, 503, "payment_unavailable")
    assert "retry-after" in r.headers
    (invoice,) = await invoices(api)
    assert invoice["status"] == "pending" and invoice["id"] == body["invoice_id"]
    summary = await api.summary()
    assert (summary["status"], summary["seats"]) == ("none", 0)
    assert server.charges == []
    assert server.requests == 1  # a refusal is never retried by the gateway

    # Once the service accepts requests again, the billing run completes it with the same key.
    report = await run_billing(api)
    assert report["purchases_completed"] == 1
    (charge,) = server.charges_for(invoice["id"])
    assert charge["amount"] == DUE
    assert (await api.summary())["seats"] == 5


async def test_s6_a_wrong_api_key_never_declines_and_the_run_reports_it(
    http_api: Api, payments_server: PaymentsServer
) -> None:
    api, server = http_api, payments_server
    server.api_key = "sk_live_the_right_one"  # the service is configured without it
    problem(await api.buy(5, key="buy-5"), 503, "payment_unavailable")
    (invoice,) = await invoices(api)

    report = await billing_run_with_errors(api)
    assert report["errors"] == [f"{invoice['id']}: payment_unavailable"], report
    assert report["purchases_failed"] == 0
    (invoice,) = await invoices(api)
    assert invoice["status"] == "pending"
    assert server.charges == []


async def test_s6_a_refused_renewal_does_not_make_the_plan_past_due(
    http_api: Api, payments_server: PaymentsServer
) -> None:
    api, server = http_api, payments_server
    assert (await api.buy(5, key="buy-5")).status_code == 201
    await api.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    server.api_key = "sk_live_the_right_one"

    report = await billing_run_with_errors(api)

    (renewal,) = await invoices(api, kind="renewal")
    assert report["errors"] == [f"{renewal['id']}: payment_unavailable"], report
    assert renewal["status"] == "pending"
    assert (await api.summary())["status"] == "active"  # not past_due: nobody declined
    problem(await pay(api, renewal["id"]), 503, "payment_unavailable")  # /pay alike
    assert server.charges_for(renewal["id"]) == []
    server.api_key = None
    report = await run_billing(api)
    (renewal,) = await invoices(api, kind="renewal")
    assert renewal["status"] == "paid"
    assert (await api.summary())["status"] == "active"
