"""CORS on every answer to an allowed origin, errors from any middleware included (SPEC §4)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import make_settings

ORIGIN = "https://inbox.conversations.test"
ROUTE = "/v1/accounts/acme/conversations"


@pytest.fixture
async def cors_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings: Settings = make_settings(database_url, cors_origins=[ORIGIN])
    application = create_app(settings)

    async def boom() -> dict[str, str]:
        raise RuntimeError("kaboom")

    application.add_api_route("/boom", boom)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Origin": ORIGIN}
        ) as client:
            yield client
    finally:
        await application.state.gateway.aclose()
        await application.state.db.dispose()


def assert_cors(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    # the browser lets the page read these, so the front end can show and report the problem
    exposed = response.headers["access-control-expose-headers"].lower()
    assert {"x-request-id", "idempotent-replayed", "retry-after"} <= set(exposed.split(", "))
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert response.headers["x-request-id"]


async def test_413_from_the_body_size_limit_carries_cors(cors_client: httpx.AsyncClient) -> None:
    r = await cors_client.post(f"{ROUTE}/quotes", content=b"x" * (1 << 20))
    assert_cors(r, 413, "payload_too_large")


async def test_413_of_a_chunked_body_carries_cors(cors_client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * 4096

    r = await cors_client.post(f"{ROUTE}/quotes", content=chunks())
    assert_cors(r, 413, "payload_too_large")


async def test_401_carries_cors(cors_client: httpx.AsyncClient) -> None:
    r = await cors_client.get(ROUTE)
    assert_cors(r, 401, "unauthenticated")


async def test_500_of_an_unexpected_error_carries_cors(cors_client: httpx.AsyncClient) -> None:
    r = await cors_client.get("/boom")
    assert_cors(r, 500, "internal_error")
    assert "kaboom" not in r.text


async def test_404_of_an_unknown_route_carries_cors(cors_client: httpx.AsyncClient) -> None:
    assert_cors(await cors_client.get("/no-such-route"), 404, "not_found")


async def test_preflight_is_answered_with_a_request_id(cors_client: httpx.AsyncClient) -> None:
    r = await cors_client.options(
        f"{ROUTE}/purchases",
        headers={
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "idempotency-key" in r.headers["access-control-allow-headers"].lower()
    assert r.headers["x-request-id"]


async def test_other_origins_get_no_cors_headers(cors_client: httpx.AsyncClient) -> None:
    r = await cors_client.get(ROUTE, headers={"Origin": "https://evil.test"})
    assert r.status_code == 401
    assert "access-control-allow-origin" not in r.headers
