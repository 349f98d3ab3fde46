"""SPEC §10 export: ``GET /invoices?format=csv`` (or ``Accept: text/csv``) streams every invoice
of the account made in [``from``, ``to``) (UTC days), oldest first, one RFC 4180 row per line
with the figures the API shows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest

from app.ledger import service
from tests.conftest import Api, problem
from tests.seats.helpers import billing_run, invoices


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def export(api: Api, query: str = "", **headers: str) -> list[dict[str, str]]:
    r = await api.call("GET", "acme", f"/invoices{query}", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.endswith("\r\n") and "\r\n" in r.text.splitlines(keepends=True)[0]
    return rows_of(r.text)


def expected(invoice: dict[str, Any]) -> dict[str, str]:
    [line] = invoice["lines"]

    def major(minor: int) -> str:
        return f"{minor // 100}.{minor % 100:02d}"

    def iso(at: str | None) -> str:
        return "" if at is None else datetime.fromisoformat(at).strftime("%Y-%m-%dT%H:%M:%SZ")

    def opt(value: int | None) -> str:
        return "" if value is None else str(value)

    return {
        "invoice_number": invoice["number"],
        "invoice_id": invoice["id"],
        "kind": invoice["kind"],
        "status": invoice["status"],
        "created_at": iso(invoice["created_at"]),
        "paid_at": iso(invoice["paid_at"]),
        "charge_id": invoice["charge_id"] or "",
        "failure_reason": invoice["failure_reason"] or "",
        "currency": invoice["currency"],
        "invoice_total": str(invoice["total"]),
        "invoice_total_major": major(invoice["total"]),
        "line": "1",
        "description": line["description"],
        "seats_before": opt(line["seats_before"]),
        "seats_after": opt(line["seats_after"]),
        "quantity": str(line["quantity"]),
        "unit_price": str(line["unit_price"]),
        "unit_price_major": major(line["unit_price"]),
        "days": opt(line["days"]),
        "days_in_period": opt(line["days_in_period"]),
        "period_start": line["period_start"],
        "period_end": line["period_end"],
        "amount": str(line["amount"]),
        "amount_major": major(line["amount"]),
    }


async def test_the_csv_export_has_every_invoice_line_with_the_api_s_figures(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    await api.put_account("acme", payment_method="pm_decline_card")
    problem(await api.buy(12), 402, "payment_declined")
    await api.put_account("acme")
    await api.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    await billing_run(api)
    shown = list(reversed(await invoices(api)))  # oldest first, as the export
    assert len(shown) == 3

    rows = await export(api, "?format=csv")
    assert rows == [expected(i) for i in shown]
    assert await export(api, "", accept="text/csv") == rows
    # A description's comma is quoted (RFC 4180), and read back whole.
    assert all("," in row["description"] for row in rows)


async def test_the_csv_range_includes_from_and_excludes_to(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201  # 2026-11-21
    await api.set_clock(datetime(2026, 12, 1, 0, tzinfo=UTC))
    await billing_run(api)  # 2026-12-01 00:00
    november = await export(api, "?format=csv&from=2026-11-21&to=2026-12-01")
    assert [r["kind"] for r in november] == ["purchase"]
    december = await export(api, "?format=csv&from=2026-12-01")
    assert [r["kind"] for r in december] == ["renewal"]
    assert await export(api, "?format=csv&to=2026-11-21") == []
    problem(
        await api.call("GET", "acme", "/invoices?format=csv&from=2026-12-01&to=2026-12-01"),
        422,
        "validation_error",
    )
    problem(await api.call("GET", "acme", "/invoices?format=csv", user="carol"), 403, "not_admin")


async def test_the_csv_export_streams_past_one_batch(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More invoices than one read holds (batches of 5 here): each appears once, in order."""
    monkeypatch.setattr(service, "CSV_BATCH", 5)
    assert (await api.buy(1)).status_code == 201
    await api.put_account("acme", payment_method="pm_decline_card")
    for seats in range(2, 13):
        problem(await api.buy(seats), 402, "payment_declined")
    rows = await export(api, "?format=csv")
    assert [int(r["invoice_number"][-4:]) for r in rows] == list(range(1, 13))
