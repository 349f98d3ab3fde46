"""Helpers shared by the seat lifecycle tests."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api


async def invoices(api: Api, account_id: str = "acme") -> list[dict[str, Any]]:
    """The account's invoices, newest first."""
    r = await api.call("GET", account_id, "/invoices?limit=100")
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def events(api: Api, account_id: str = "acme") -> list[dict[str, Any]]:
    """The account's audit log, newest first."""
    r = await api.call("GET", account_id, "/events?limit=100")
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def billing_run(api: Api) -> dict[str, Any]:
    """Run billing now; it must report no error."""
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    assert report["errors"] == []
    return report
