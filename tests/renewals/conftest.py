"""Fixtures for billing over time: helpers over the ``api`` fixture, and the same app wired to
a real payments server through the ``http`` gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import Api, make_settings, seed_directory
from tests.payments_server import PaymentsServer

PRICE = 1900  # SEATS_PRICE_MONTHLY's default, the price the fixtures' apps use


def prorated(seats: int, months: int, days_remaining: int, days_in_period: int) -> int:
    """SPEC §3's due_now, recomputed here in integers: round half up of seats x price x months x
    days_remaining / days_in_period."""
    numerator = seats * PRICE * months * days_remaining
    return (2 * numerator + days_in_period) // (2 * days_in_period)


async def run_billing(api: Api) -> dict[str, Any]:
    """POST /internal/v1/billing/run as a service; the run's report."""
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    assert report["errors"] == [], report
    return report


async def collect(api: Api, account_id: str, path: str) -> list[dict[str, Any]]:
    """Every item of a list endpoint, oldest first (the API lists newest first)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = f"?limit=100&cursor={cursor}" if cursor else "?limit=100"
        r = await api.call("GET", account_id, path + params)
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items[::-1]


async def invoices(
    api: Api, account_id: str = "acme", kind: str | None = None
) -> list[dict[str, Any]]:
    found = await collect(api, account_id, "/invoices")
    return [i for i in found if kind is None or i["kind"] == kind]


async def events(
    api: Api, account_id: str = "acme", type: str | None = None
) -> list[dict[str, Any]]:
    found = await collect(api, account_id, "/events")
    return [e for e in found if type is None or e["type"] == type]


async def agent(api: Api, user_id: str, account_id: str = "acme") -> dict[str, Any]:
    r = await api.call("GET", account_id, f"/agents/{user_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def pay(
    api: Api, invoice_id: str, account_id: str = "acme", user: str = "alice"
) -> httpx.Response:
    return await api.call("POST", account_id, f"/invoices/{invoice_id}/pay", user=user)


def period_of(invoice: dict[str, Any]) -> tuple[date, date]:
    line = invoice["lines"][0]
    return date.fromisoformat(line["period_start"]), date.fromisoformat(line["period_end"])


seed = seed_directory  # the same directory as the ``api`` fixture's


@pytest.fixture
def payments_server() -> Iterator[PaymentsServer]:
    with PaymentsServer() as server:
        server.hang_seconds = 1.0  # longer than the app's read timeout, short enough to stop
        yield server


@pytest.fixture
async def http_app(database_url: str, payments_server: PaymentsServer) -> AsyncIterator[Any]:
    """The app on this test's database, charging through the payments server over HTTP."""
    settings = make_settings(
        database_url,
        payments_gateway="http",
        payments_url=payments_server.url,
        payments_connect_timeout=0.3,
        payments_read_timeout=0.3,
    )
    application = create_app(settings)
    yield application
    await application.state.gateway.aclose()
    await application.state.db.dispose()


@pytest.fixture
async def http_api(http_app: Any) -> AsyncIterator[Api]:
    """Like ``api`` (clock at 2026-11-21 12:00 UTC, acme and globex), over the http gateway."""
    transport = httpx.ASGITransport(app=http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield await seed(Api(client))
