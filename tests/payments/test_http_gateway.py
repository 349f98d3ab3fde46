"""The http gateway against a real payments server (SPEC §6): never two charges for one key."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import httpx
import pytest

from app.payments import (
    ChargeDeclined,
    ChargeResult,
    ChargeSucceeded,
    GatewayRejected,
    GatewayUnavailable,
    HttpGateway,
    VoidSucceeded,
    make_gateway,
)
from app.payments.http import retry_after_seconds
from tests.payments_server import PaymentsServer

READ_TIMEOUT = 0.3


@pytest.fixture
def payments_server() -> Iterator[PaymentsServer]:
    with PaymentsServer() as server:
        server.hang_seconds = 1.0  # longer than READ_TIMEOUT, short enough to stop quickly
        yield server


class Connect(Protocol):
    def __call__(self, *, max_attempts: int = 3, api_key: str | None = None) -> HttpGateway: ...


@pytest.fixture
async def connect(payments_server: PaymentsServer) -> AsyncIterator[Connect]:
    """Builds gateways to the test server with fast timeouts, and closes them afterwards."""
    gateways: list[HttpGateway] = []

    def make(*, max_attempts: int = 3, api_key: str | None = None) -> HttpGateway:
        gateway = HttpGateway(
            payments_server.url,
            connect_timeout=0.5,
            read_timeout=READ_TIMEOUT,
            backoff=0.01,
            max_attempts=max_attempts,
            api_key=api_key,
        )
        gateways.append(gateway)
        return gateway

    yield make
    for gateway in gateways:
        await gateway.aclose()


@pytest.fixture
def gateway(connect: Connect) -> HttpGateway:
    return connect()


async def charge(
    gateway: HttpGateway,
    key: str = "inv_1",
    payment_method: str = "pm_card_visa",
    amount: int = 1900,
) -> ChargeResult:
    return await gateway.charge(
        payment_method=payment_method,
        amount=amount,
        currency="USD",
        idempotency_key=key,
        description="3 Conversations seats",
    )


# --- definitive answers ---------------------------------------------------------------------


async def test_a_charge_succeeds(gateway: HttpGateway, payments_server: PaymentsServer) -> None:
    result = await charge(gateway)
    assert result == ChargeSucceeded("ch_1")
    assert payments_server.charges == [
        {
            "id": "ch_1",
            "idempotency_key": "inv_1",
            "payment_method": "pm_card_visa",
            "amount": 1900,
            "currency": "USD",
            "description": "3 Conversations seats",
        }
    ]


async def test_sends_the_idempotency_key_and_the_charge_as_json(
    connect: Connect, payments_server: PaymentsServer
) -> None:
    gateway = connect(api_key="sk_test_123")
    await charge(gateway, key="inv_42", amount=5700)
    [request] = payments_server.received
    assert (request.method, request.path) == ("POST", "/charges")
    assert request.headers["idempotency-key"] == "inv_42"
    assert request.headers["authorization"] == "Bearer sk_test_123"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "payment_method": "pm_card_visa",
        "amount": 5700,
        "currency": "USD",
        "description": "3 Conversations seats",
    }


async def test_no_authorization_header_without_an_api_key(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    await charge(gateway)
    assert "authorization" not in payments_server.received[0].headers


async def test_a_decline_is_definitive_and_not_retried(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    result = await charge(gateway, payment_method="pm_decline_card")
    assert result == ChargeDeclined("card_declined")
    assert payments_server.charges == []
    assert payments_server.requests == 1


async def test_the_same_key_twice_charges_once(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    first = await charge(gateway, key="inv_1")
    again = await charge(gateway, key="inv_1")
    assert first == again == ChargeSucceeded("ch_1")
    assert len(payments_server.charges_for("inv_1")) == 1
    assert len(payments_server.charges) == 1


async def test_different_keys_charge_separately(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    assert await charge(gateway, key="inv_1") == ChargeSucceeded("ch_1")
    assert await charge(gateway, key="inv_2") == ChargeSucceeded("ch_2")


# SPEC §6: only a decline is a decline. The service refusing the request itself is our fault.


async def test_s6_a_bad_request_is_rejected_not_declined_and_not_retried(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.fail_next(1, "bad_request")
    with pytest.raises(GatewayRejected, match="HTTP 400") as refused:
        await charge(gateway)
    assert refused.value.status == 400
    assert payments_server.requests == 1
    assert payments_server.charges == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 415, 422, 451])
async def test_s6_a_refusal_of_the_service_is_rejected_not_declined(
    gateway: HttpGateway, payments_server: PaymentsServer, status: int
) -> None:
    payments_server.refuse_next(1, status)
    with pytest.raises(GatewayRejected) as refused:
        await charge(gateway)
    assert refused.value.status == status
    assert payments_server.requests == 1  # never retried
    assert payments_server.charges == []
    # Nothing was charged: the same key charges once the service accepts the request.
    assert await charge(gateway) == ChargeSucceeded("ch_1")


async def test_s6_a_wrong_api_key_is_rejected_not_declined(
    connect: Connect, payments_server: PaymentsServer
) -> None:
    payments_server.api_key = "sk_test_right"
    with pytest.raises(GatewayRejected, match="HTTP 401") as refused:
        await charge(connect(api_key="sk_test_wrong"))
    assert refused.value.status == 401
    with pytest.raises(GatewayRejected, match="HTTP 401"):
        await charge(connect())  # no key at all
    assert payments_server.charges == []
    assert await charge(connect(api_key="sk_test_right")) == ChargeSucceeded("ch_1")


async def test_s6_only_a_402_is_a_decline(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.refuse_next(1, 402)
    assert await charge(gateway) == ChargeDeclined("refused_402")  # its "code" is the reason
    assert await charge(gateway, key="inv_2", payment_method="pm_decline_card") == (
        ChargeDeclined("card_declined")
    )
    assert payments_server.charges == []


async def test_reusing_a_key_for_another_charge_is_rejected(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    await charge(gateway, key="inv_1", amount=1900)
    with pytest.raises(GatewayRejected, match="idempotency_key_reused") as refused:
        await charge(gateway, key="inv_1", amount=3800)
    assert refused.value.status == 422
    assert payments_server.requests == 2
    assert len(payments_server.charges) == 1


# --- void (R14): the key can never charge again ---------------------------------------------


async def test_r14_void_of_a_captured_key_refunds_its_charge(
    connect: Connect, payments_server: PaymentsServer
) -> None:
    gateway = connect(api_key="sk_test_123")
    assert await charge(gateway, key="inv_1") == ChargeSucceeded("ch_1")
    assert await gateway.void(idempotency_key="inv_1") == VoidSucceeded("ch_1")
    request = payments_server.received[-1]
    assert (request.method, request.path) == ("POST", "/charges/inv_1/void")
    assert request.headers["idempotency-key"] == "inv_1"
    assert request.headers["authorization"] == "Bearer sk_test_123"
    assert payments_server.voids == [{"idempotency_key": "inv_1", "refunded_charge_id": "ch_1"}]
    assert payments_server.captured == []
    # The key is dead: a late retry of the charge is a decline, never a second charge.
    assert await charge(gateway, key="inv_1") == ChargeDeclined("key_voided")
    assert len(payments_server.charges) == 1


async def test_r14_void_of_an_uncharged_key_refunds_nothing_and_blocks_the_key(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    assert await gateway.void(idempotency_key="inv_9") == VoidSucceeded(None)
    assert await charge(gateway, key="inv_9") == ChargeDeclined("key_voided")
    assert payments_server.charges == []


async def test_r14_voiding_twice_answers_the_same(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    await charge(gateway, key="inv_1")
    first = await gateway.void(idempotency_key="inv_1")
    assert await gateway.void(idempotency_key="inv_1") == first == VoidSucceeded("ch_1")
    assert len(payments_server.voids) == 1


async def test_r14_the_key_is_escaped_in_the_void_path(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    assert await gateway.void(idempotency_key="inv/1 x?") == VoidSucceeded(None)
    assert payments_server.received[-1].path == "/charges/inv%2F1%20x%3F/void"
    assert payments_server.is_voided("inv/1 x?")


@pytest.mark.parametrize(
    "fault", ["error_before_charge", "error_after_charge", "timeout_after_charge", "malformed"]
)
async def test_r14_a_void_without_a_definitive_answer_is_retried(
    gateway: HttpGateway, payments_server: PaymentsServer, fault: str
) -> None:
    await charge(gateway, key="inv_1")
    payments_server.fail_next(1, fault)
    assert await gateway.void(idempotency_key="inv_1") == VoidSucceeded("ch_1")
    assert payments_server.requests == 3
    assert len(payments_server.voids) == 1


async def test_r14_a_void_never_answered_is_unavailable(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.fail_next(3, "error_before_charge")
    with pytest.raises(GatewayUnavailable, match="void"):
        await gateway.void(idempotency_key="inv_1")
    assert payments_server.requests == 3
    assert payments_server.voids == []
    payments_server.stop()
    with pytest.raises(GatewayUnavailable, match="ConnectError"):
        await gateway.void(idempotency_key="inv_1")


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
async def test_r14_a_refused_void_is_rejected_at_once(
    gateway: HttpGateway, payments_server: PaymentsServer, status: int
) -> None:
    payments_server.refuse_next(1, status)
    with pytest.raises(GatewayRejected) as refused:
        await gateway.void(idempotency_key="inv_1")
    assert refused.value.status == status
    assert payments_server.requests == 1
    assert payments_server.voids == []


# --- unknown outcomes: retried with the same key --------------------------------------------


async def test_charged_then_timed_out_the_retry_returns_the_same_charge(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.fail_next(1, "timeout_after_charge")
    started = time.monotonic()
    result = await charge(gateway)
    elapsed = time.monotonic() - started
    assert result == ChargeSucceeded("ch_1")
    assert len(payments_server.charges_for("inv_1")) == 1
    assert payments_server.requests == 2
    assert [r.headers["idempotency-key"] for r in payments_server.received] == ["inv_1"] * 2
    # Answered from the idempotency store while the first handler was still holding its answer.
    assert elapsed < payments_server.hang_seconds


async def test_every_attempt_timing_out_is_unavailable_with_one_charge(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.fail_next(3, "timeout_after_charge")
    with pytest.raises(GatewayUnavailable, match="ReadTimeout"):
        await charge(gateway)
    assert payments_server.requests == 3
    assert len(payments_server.charges) == 1
    # Later (a retry of the purchase, or the billing run), the same key finds that charge.
    assert await charge(gateway) == ChargeSucceeded("ch_1")
    assert len(payments_server.charges) == 1


async def test_server_error_after_charging_the_retry_returns_the_same_charge(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.fail_next(1, "error_after_charge")
    assert await charge(gateway) == ChargeSucceeded("ch_1")
    assert payments_server.requests == 2
    assert len(payments_server.charges) == 1


async def test_unavailable_before_charging_then_success(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.fail_next(2, "error_before_charge")
    assert await charge(gateway) == ChargeSucceeded("ch_1")
    assert payments_server.requests == 3
    assert len(payments_server.charges) == 1


async def test_server_errors_on_every_attempt_are_unavailable(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.fail_next(3, "error_before_charge")
    with pytest.raises(GatewayUnavailable, match="HTTP 503"):
        await charge(gateway)
    assert payments_server.requests == 3
    assert payments_server.charges == []


async def test_max_attempts_bounds_the_retries(
    connect: Connect, payments_server: PaymentsServer
) -> None:
    gateway = connect(max_attempts=1)
    payments_server.fail_next(1, "error_before_charge")
    with pytest.raises(GatewayUnavailable, match="after 1 attempt"):
        await charge(gateway)
    assert payments_server.requests == 1


async def test_a_rate_limit_is_retried(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.fail_next(1, "rate_limited")
    assert await charge(gateway) == ChargeSucceeded("ch_1")
    assert payments_server.requests == 2


async def test_a_numeric_retry_after_is_obeyed(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.retry_after = "0.3"  # far longer than the 0.01 s backoff
    payments_server.fail_next(1, "rate_limited")
    started = time.monotonic()
    assert await charge(gateway) == ChargeSucceeded("ch_1")
    assert time.monotonic() - started >= 0.3


async def test_a_2xx_with_an_unreadable_body_is_retried(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.fail_next(1, "malformed")
    assert await charge(gateway) == ChargeSucceeded("ch_1")
    assert payments_server.requests == 2


async def test_connection_refused_is_unavailable_until_the_server_is_back(
    gateway: HttpGateway, payments_server: PaymentsServer
) -> None:
    payments_server.stop()
    with pytest.raises(GatewayUnavailable, match="ConnectError"):
        await charge(gateway)
    payments_server.start()
    assert await charge(gateway) == ChargeSucceeded("ch_1")
    assert payments_server.requests == 1


# --- the response contract, without a server ------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"id": "ch_9", "status": "succeeded"}, ChargeSucceeded("ch_9")),
        (201, {"status": "declined", "reason": "expired_card"}, ChargeDeclined("expired_card")),
        (402, {"reason": "insufficient_funds"}, ChargeDeclined("insufficient_funds")),
        (402, {"code": "card_declined"}, ChargeDeclined("card_declined")),
        (402, None, ChargeDeclined("declined")),
    ],
)
async def test_definitive_answers(status: int, body: object, expected: ChargeResult) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    gateway = HttpGateway("http://payments.invalid", transport=httpx.MockTransport(handler))
    try:
        assert await charge(gateway) == expected
    finally:
        await gateway.aclose()
    assert calls == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"status": "pending"}),
        (200, {"status": "succeeded"}),  # no id
        (200, ["not", "an", "object"]),
        (408, None),
        (409, {"code": "request_in_progress"}),
        (425, None),
        (429, None),
        (500, None),
        (502, None),
        (504, None),
    ],
)
async def test_unknown_outcomes_are_retried(status: int, body: object) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    gateway = HttpGateway(
        "http://payments.invalid", backoff=0, transport=httpx.MockTransport(handler)
    )
    try:
        with pytest.raises(GatewayUnavailable, match=f"HTTP {status}"):
            await charge(gateway)
    finally:
        await gateway.aclose()
    assert calls == 3


# Every 4xx but the decline (402) and the "not now" ones (408, 409, 425, 429).
REFUSALS = [s for s in range(400, 500) if s not in {402, 408, 409, 425, 429}]


@pytest.mark.parametrize("operation", ["charge", "void"])
async def test_s6_every_other_4xx_is_rejected_at_once(operation: str) -> None:
    calls, status = 0, 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json={"code": "nope"})

    for status in REFUSALS:
        gateway = HttpGateway(
            "http://payments.invalid", backoff=0, transport=httpx.MockTransport(handler)
        )
        calls = 0
        try:
            with pytest.raises(GatewayRejected) as refused:
                if operation == "charge":
                    await charge(gateway)
                else:
                    await gateway.void(idempotency_key="inv_1")
        finally:
            await gateway.aclose()
        assert (refused.value.status, calls) == (status, 1)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"status": "voided", "refunded_charge_id": "ch_9"}, VoidSucceeded("ch_9")),
        (201, {"status": "voided", "refunded_charge_id": None}, VoidSucceeded(None)),
        (200, {"status": "voided"}, VoidSucceeded(None)),
    ],
)
async def test_void_answers(status: int, body: object, expected: VoidSucceeded) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/charges/inv_1/void"
        return httpx.Response(status, json=body)

    gateway = HttpGateway("http://payments.invalid", transport=httpx.MockTransport(handler))
    try:
        assert await gateway.void(idempotency_key="inv_1") == expected
    finally:
        await gateway.aclose()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"status": "pending"}),
        (200, {"status": "voided", "refunded_charge_id": 7}),
        (409, None),
        (429, None),
        (503, None),
    ],
)
async def test_void_unknown_outcomes_are_retried(status: int, body: object) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    gateway = HttpGateway(
        "http://payments.invalid", backoff=0, transport=httpx.MockTransport(handler)
    )
    try:
        with pytest.raises(GatewayUnavailable, match=f"HTTP {status}"):
            await gateway.void(idempotency_key="inv_1")
    finally:
        await gateway.aclose()
    assert calls == 3


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("0", 0.0), ("1.5", 1.5), ("60", 2.0), ("-1", None), ("nan", None), ("soon", None)],
)
def test_a_numeric_retry_after_is_obeyed_up_to_two_seconds(
    header: str, seconds: float | None
) -> None:
    response = httpx.Response(429, headers={"Retry-After": header})
    assert retry_after_seconds(response) == seconds


def test_a_retry_after_date_is_ignored() -> None:
    response = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_seconds(response) is None


# --- the factory ----------------------------------------------------------------------------


async def test_the_factory_builds_the_http_gateway(payments_server: PaymentsServer) -> None:
    gateway = make_gateway("http", payments_server.url, connect_timeout=0.5, read_timeout=1.0)
    try:
        assert isinstance(gateway, HttpGateway)
        assert await charge(gateway) == ChargeSucceeded("ch_1")
    finally:
        await gateway.aclose()


def test_the_http_gateway_needs_a_url() -> None:
    with pytest.raises(ValueError, match="URL"):
        make_gateway("http", None, connect_timeout=2.0, read_timeout=10.0)
