"""``seats verify`` finds what is wrong, and nothing when all is right."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.cli import main
from app.config import Settings, get_settings
from app.db import Database
from app.verify import CHECKS, verify
from tests.conftest import Api


async def violations(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    db = Database(settings.database_url)
    try:
        return {v.check: v.rows for v in await verify(db)}
    finally:
        await db.dispose()


async def busy_account(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    for user_id in await api.add_users(3):
        assert (await api.assign(user_id)).status_code == 201
    assert (await api.buy(10)).status_code == 201
    assert (await api.remove(5)).status_code == 200
    assert (await api.unassign("u0")).status_code == 204


async def test_verify_passes_on_a_busy_account(api: Api, settings: Settings) -> None:
    await busy_account(api)
    assert await violations(settings) == {}


async def test_verify_reports_an_assigned_count_that_drifted(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    await busy_account(api)
    await sql("UPDATE plan SET assigned = assigned + 1 WHERE account_id = 'acme'")
    found = await violations(settings)
    assert list(found) == ["assigned count equals assignment rows"]
    assert found["assigned count equals assignment rows"][0][:3] == ("acme", 3, 2)


async def test_verify_reports_an_invoice_whose_lines_do_not_add_up(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    await busy_account(api)
    await sql(
        "INSERT INTO invoice (id, account_id, kind, status, currency, total, seats, period_start,"
        " period_end, payment_method, created_by, created_at) VALUES ('inv_bad', 'acme',"
        " 'purchase', 'failed', 'USD', 500, 1, '2026-11-01', '2026-12-01', 'pm', 'x',"
        " '2026-11-21 12:00:00')"
    )
    found = await violations(settings)
    assert "invoice total equals the sum of its lines" in found
    assert found["invoice total equals the sum of its lines"][0][0] == "inv_bad"


async def test_verify_reports_paid_invoices_without_a_charge(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    await sql(
        "INSERT INTO invoice (id, account_id, kind, status, currency, total, seats, period_start,"
        " period_end, payment_method, created_by, created_at, paid_at) VALUES ('inv_free',"
        " 'acme', 'renewal', 'paid', 'USD', 0, 0, '2026-11-01', '2026-12-01', 'pm', 'x',"
        " '2026-11-21 12:00:00', '2026-11-21 12:00:00'), ('inv_nocharge', 'acme', 'renewal',"
        " 'paid', 'USD', 100, 1, '2026-12-01', '2027-01-01', 'pm', 'x', '2026-11-21 12:00:00',"
        " '2026-11-21 12:00:00')"
    )
    found = await violations(settings)
    rows = found["every paid invoice has a charge id (unless free) and a paid_at"]
    assert [r[0] for r in rows] == ["inv_nocharge"]


async def test_verify_reports_seats_without_a_paid_purchase(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    await sql(
        "UPDATE plan SET status = 'active', seats = 7, period_start = '2026-11-01',"
        " period_end = '2026-12-01' WHERE account_id = 'acme'"
    )
    found = await violations(settings)
    assert found["paid seats are backed by a paid invoice"] == [("acme", 7)]


async def test_verify_reports_a_pending_purchase_its_plan_forgot(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    await api.put_account("acme", payment_method="pm_unavailable")
    assert (await api.buy(5)).status_code == 503
    assert await violations(settings) == {}
    await sql("UPDATE plan SET pending_invoice_id = NULL, pending_seats = NULL")
    found = await violations(settings)
    assert list(found) == ["a pending purchase is the one its plan waits for, and back"]


def test_seats_verify_command_exits_non_zero_on_a_violation(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEATS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SEATS_JWT_SECRET", settings.jwt_secret)
    get_settings.cache_clear()
    try:
        main(["verify"])  # a clean database: exits normally
        assert f"{len(CHECKS)} of {len(CHECKS)} invariants hold" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()


async def test_seats_verify_command_reports_failures(
    api: Api,
    settings: Settings,
    sql: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await busy_account(api)
    await sql("UPDATE plan SET assigned = 0")
    monkeypatch.setenv("SEATS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SEATS_JWT_SECRET", settings.jwt_secret)
    get_settings.cache_clear()
    try:
        import asyncio

        with pytest.raises(SystemExit) as exit_info:
            await asyncio.to_thread(main, ["verify"])
        assert exit_info.value.code == 1
        out = capsys.readouterr().out
        assert "FAIL assigned count equals assignment rows" in out
    finally:
        get_settings.cache_clear()
