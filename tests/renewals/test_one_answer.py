"""One answer per collection result: a purchase and ``POST .../invoices/{id}/pay`` that meet
the same gateway outcome for the same invoice answer the same problem (status, code, title,
detail, its fields and ``Retry-After``), since one mapping makes both answers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Api, problem
from tests.payments_server import PaymentsServer
from tests.renewals.conftest import pay


def _answer(r: httpx.Response) -> tuple[dict[str, Any], str | None]:
    body = {k: v for k, v in r.json().items() if k not in ("instance", "request_id")}
    return body, r.headers.get("retry-after")


async def test_no_answer_from_the_gateway_is_the_same_problem_on_purchase_and_pay(
    api: Api,
) -> None:
    assert (await api.put_account("acme", payment_method="pm_unavailable_x")).status_code == 200
    bought = await api.buy(5, key="buy-5")
    invoice_id = problem(bought, 503, "payment_pending")["invoice_id"]
    paid = await pay(api, invoice_id)
    problem(paid, 503, "payment_pending")
    assert _answer(paid) == _answer(bought)


async def test_a_refusal_by_the_payments_service_is_the_same_problem_on_purchase_and_pay(
    http_api: Api, payments_server: PaymentsServer
) -> None:
    api, server = http_api, payments_server
    server.refuse_next(1, 401)
    bought = await api.buy(5, key="buy-5")
    invoice_id = problem(bought, 503, "payment_unavailable")["invoice_id"]
    server.refuse_next(1, 401)
    paid = await pay(api, invoice_id)
    problem(paid, 503, "payment_unavailable")
    assert _answer(paid) == _answer(bought)
