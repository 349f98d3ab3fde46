"""``seats verify`` finds what is wrong, and nothing when all is right."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import main
from app.config import Settings, get_settings
from app.db import Database
from app.verify import CHECKS, for_dialect, verify
from tests.conftest import Api


def _plain(value: object) -> object:
    # PostgreSQL answers dates, SQLite their ISO text: compare the text.
    return value.isoformat() if isinstance(value, date) else value


async def violations(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    db = Database(settings.database_url)
    try:
        return {v.check: [tuple(map(_plain, r)) for r in v.rows] for v in await verify(db)}
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
    assert found["paid seats are covered by the invoices of their period"] == [
        ("acme", 7, "2026-12-01", None)
    ]


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


# Tampering: rows changed behind the triggers' back, as someone with the database's superuser
# (or a stolen owner's session with the triggers off) could. Each check must notice.

Tamper = Callable[..., Awaitable[None]]


@pytest.fixture
def tamper(settings: Settings) -> Tamper:
    """``await tamper(sql, ...)``: run statements with the append-only triggers out of the way.

    PostgreSQL: as the superuser with ``session_replication_role = replica`` (no trigger, no
    foreign key fires). SQLite: the triggers of this test's private copy are dropped.
    """

    async def run(*statements: str) -> None:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SET LOCAL session_replication_role = replica"))
                else:
                    names = await conn.scalars(
                        text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                    )
                    for name in list(names):
                        await conn.execute(text(f"DROP TRIGGER {name}"))
                for statement in statements:
                    await conn.execute(text(statement))
        finally:
            await engine.dispose()

    return run


async def paid_history(api: Api) -> None:
    """acme: 3 agents, 10 seats bought in November, renewed on 2026-12-01."""
    assert (await api.start_trial()).status_code == 201
    for user_id in await api.add_users(3):
        assert (await api.assign(user_id)).status_code == 201
    assert (await api.buy(10)).status_code == 201
    await api.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.json()["renewals_paid"] == 1, r.text


async def test_tamper_seats_raised_without_an_invoice(
    api: Api, settings: Settings, tamper: Tamper
) -> None:
    await paid_history(api)
    assert await violations(settings) == {}
    await tamper("UPDATE plan SET seats = 5000 WHERE account_id = 'acme'")
    found = await violations(settings)
    assert list(found) == ["paid seats are covered by the invoices of their period"]
    assert found["paid seats are covered by the invoices of their period"] == [
        ("acme", 5000, "2027-01-01", 10)
    ]


async def test_tamper_period_moved_without_a_renewal(
    api: Api, settings: Settings, tamper: Tamper
) -> None:
    await paid_history(api)
    await tamper("UPDATE plan SET period_end = '2099-01-01' WHERE account_id = 'acme'")
    found = await violations(settings)
    assert found["a paid period is backed by a paid or outstanding invoice"] == [
        ("acme", "active", "2026-12-01", "2099-01-01")
    ]
    # Stretching the period back over a real invoice's end is caught too.
    await tamper(
        "UPDATE plan SET period_start = '2026-11-01', period_end = '2027-01-01'",
        "UPDATE plan SET period_start = '2026-10-01'",
    )
    assert await violations(settings) == {}  # an earlier start is still covered...
    await tamper("UPDATE plan SET period_start = '2026-12-15'")
    found = await violations(settings)  # ...but not a period starting after its invoice
    assert list(found) == ["a paid period is backed by a paid or outstanding invoice"]


async def test_tamper_audit_log_truncated(api: Api, settings: Settings, tamper: Tamper) -> None:
    await paid_history(api)
    await tamper(
        "TRUNCATE event" if settings.database_url.startswith("postgres") else "DELETE FROM event"
    )
    found = await violations(settings)
    assert sorted(found) == [
        "agents equal assignments minus unassignments in the audit log",
        "every agent has its agent.assigned event",
        "every paid purchase and every renewal is in the audit log",
    ]
    assert sorted(found["every agent has its agent.assigned event"]) == [
        ("acme", "u0"),
        ("acme", "u1"),
        ("acme", "u2"),
    ]
    assert found["agents equal assignments minus unassignments in the audit log"] == [
        ("acme", 3, 0)
    ]
    assert sorted(
        r[1] for r in found["every paid purchase and every renewal is in the audit log"]
    ) == [
        "purchase",
        "renewal",
    ]


async def test_tamper_agent_added_without_an_event(
    api: Api, settings: Settings, tamper: Tamper
) -> None:
    await paid_history(api)
    await tamper(
        "INSERT INTO assignment (account_id, user_id, assigned_at, assigned_by)"
        " VALUES ('acme', 'carol', '2026-12-01 02:00:00', 'user:alice')",
        "UPDATE plan SET assigned = assigned + 1 WHERE account_id = 'acme'",
    )
    found = await violations(settings)
    assert sorted(found) == [
        "agents equal assignments minus unassignments in the audit log",
        "every agent has its agent.assigned event",
    ]
    assert found["every agent has its agent.assigned event"] == [("acme", "carol")]
    assert found["agents equal assignments minus unassignments in the audit log"] == [
        ("acme", 4, 3)
    ]


FORGED = (
    "INSERT INTO invoice (id, account_id, kind, status, currency, total, seats, period_start,"
    " period_end, payment_method, created_by, created_at, paid_at, charge_id) VALUES"
    " ('inv_forged', 'acme', 'purchase', 'paid', 'USD', 0, 100000, '2026-12-01', '2027-01-01',"
    " 'pm_card_visa', 'user:alice', '2026-12-02 00:00:00', '2026-12-02 00:00:00', NULL)"
)


async def test_tamper_forged_zero_total_paid_invoice_without_lines(
    api: Api, settings: Settings, tamper: Tamper
) -> None:
    await paid_history(api)
    await tamper(FORGED, "UPDATE plan SET seats = 100000 WHERE account_id = 'acme'")
    found = await violations(settings)
    assert found["a paid invoice charges for its seats"] == [("inv_forged", 100000, 0)]
    # The forger would need the audit log too.
    assert found["every paid purchase and every renewal is in the audit log"] == [
        ("inv_forged", "purchase", "paid")
    ]


async def test_tamper_forged_paid_invoice_with_a_free_line(
    api: Api, settings: Settings, tamper: Tamper
) -> None:
    await paid_history(api)
    await tamper(
        FORGED,
        "INSERT INTO invoice_line (invoice_id, position, description, quantity, unit_price,"
        " amount, period_start, period_end) VALUES ('inv_forged', 0, 'seats', 100000, 1900, 0,"
        " '2026-12-02', '2027-01-01')",
        "UPDATE plan SET seats = 100000 WHERE account_id = 'acme'",
    )
    found = await violations(settings)
    assert found["every line is a prorated share of its seats' price"] == [
        ("inv_forged", 0, 100000, 1900, 0)
    ]
    assert "a paid invoice charges for its seats" not in found  # it has a line: the line lies


async def test_tamper_paid_invoice_total_rewritten(
    api: Api, settings: Settings, tamper: Tamper
) -> None:
    await paid_history(api)
    await tamper("UPDATE invoice SET total = 1 WHERE kind = 'renewal'")
    found = await violations(settings)
    assert list(found) == ["invoice total equals the sum of its lines"]
    assert found["invoice total equals the sum of its lines"][0][1:] == (1, 19000)


async def test_tamper_declined_renewal_marked_paid(
    api: Api, settings: Settings, tamper: Tamper
) -> None:
    await paid_history(api)
    await api.put_account("acme", payment_method="pm_decline_x")
    await api.set_clock(datetime(2027, 1, 1, 1, tzinfo=UTC))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.json()["renewals_declined"] == 1, r.text
    assert await violations(settings) == {}  # past due, backed by its outstanding renewal
    await tamper(
        "UPDATE invoice SET status = 'paid', paid_at = '2027-01-01 02:00:00',"
        " charge_id = 'ch_forged' WHERE status = 'pending'",
        "UPDATE plan SET status = 'active'",
    )
    found = await violations(settings)
    assert list(found) == ["a paid invoice's charge succeeded"]


async def test_tamper_rows_referring_to_missing_rows(
    api: Api, settings: Settings, tamper: Tamper
) -> None:
    await paid_history(api)
    await tamper(
        "DELETE FROM charge_outcome",
        "DELETE FROM charge_attempt",
        "DELETE FROM invoice_line WHERE invoice_id IN"
        " (SELECT id FROM invoice WHERE kind = 'renewal')",
        "DELETE FROM invoice WHERE kind = 'renewal'",
        "UPDATE invoice SET account_id = 'ghost'",
        "INSERT INTO event (id, account_id, type, actor, at, data) VALUES ('evt_ghost', 'ghost',"
        " 'seats.removed', 'user:x', '2026-12-02 00:00:00', '{}')",
    )
    found = await violations(settings)
    orphans = sorted(found["no orphan rows"])
    kinds = [kind for kind, _ in orphans]
    assert kinds == ["event", "event of a missing invoice", "invoice"], orphans
    assert ("event", "evt_ghost") in orphans
    # Without its renewal the period is no longer backed, nor its seats covered.
    assert "a paid period is backed by a paid or outstanding invoice" in found
    assert "paid seats are covered by the invoices of their period" in found


def test_checks_run_on_each_database_s_json_spelling() -> None:
    query = "SELECT 1 FROM event e WHERE JSON_TEXT(e.data, 'user_id') = 'u0'"
    assert for_dialect(query, "postgresql").endswith("(e.data ->> 'user_id') = 'u0'")
    assert for_dialect(query, "sqlite").endswith("json_extract(e.data, '$.user_id') = 'u0'")
