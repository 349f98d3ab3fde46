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
from bench.verify import seed_agents
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


async def next_number(sql: Callable[..., Any], account_id: str = "acme") -> dict[str, object]:
    """The account's next invoice number, taken as the service takes it, for a test's rows."""
    [(n,)] = await sql(
        "INSERT INTO invoice_counter (account_id, last) VALUES (:a, 1) ON CONFLICT (account_id)"
        " DO UPDATE SET last = invoice_counter.last + 1 RETURNING last",
        a=account_id,
    )
    return {"seq": n, "num": f"T-{n:04d}"}


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


async def test_r15_verify_reports_a_scheduled_decrease_that_no_longer_holds(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    await busy_account(api)
    body = {"seats": 3, "effective": "period_end"}
    r = await api.call("POST", "acme", "/removals", user="alice", json=body)
    assert r.status_code == 200, r.text
    assert await violations(settings) == {}
    await sql("UPDATE plan SET scheduled_seats = 1 WHERE account_id = 'acme'")
    found = await violations(settings)
    check = "a scheduled decrease is below the total, covers the agents, at the period's end"
    assert list(found) == [check]
    assert found[check][0][:5] == ("acme", "active", 5, 2, 1)


async def test_verify_reports_an_invoice_whose_lines_do_not_add_up(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    await busy_account(api)
    await sql(
        "INSERT INTO invoice (id, account_id, sequence, number, kind, status, currency, total,"
        " seats, period_start, period_end, payment_method, created_by, created_at) VALUES"
        " ('inv_bad', 'acme', :seq, :num, 'purchase', 'failed', 'USD', 500, 1, '2026-11-01',"
        " '2026-12-01', 'pm', 'x', '2026-11-21 12:00:00')",
        **await next_number(sql),
    )
    found = await violations(settings)
    assert "invoice total equals the sum of its lines" in found
    assert found["invoice total equals the sum of its lines"][0][0] == "inv_bad"


async def test_verify_reports_paid_invoices_without_a_charge(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    first, second = await next_number(sql), await next_number(sql)
    await sql(
        "INSERT INTO invoice (id, account_id, sequence, number, kind, status, currency, total,"
        " seats, period_start, period_end, payment_method, created_by, created_at, paid_at)"
        " VALUES ('inv_free', 'acme', :seq1, :num1, 'renewal', 'paid', 'USD', 0, 0, '2026-11-01',"
        " '2026-12-01', 'pm', 'x', '2026-11-21 12:00:00', '2026-11-21 12:00:00'), ('inv_nocharge',"
        " 'acme', :seq2, :num2, 'renewal', 'paid', 'USD', 100, 1, '2026-12-01', '2027-01-01', 'pm',"
        " 'x', '2026-11-21 12:00:00', '2026-11-21 12:00:00')",
        seq1=first["seq"],
        num1=first["num"],
        seq2=second["seq"],
        num2=second["num"],
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


async def test_verify_reports_invoice_numbers_with_a_gap_or_a_duplicate(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    """SPEC §10: numbers are gapless and unique per account, and the counter knows the last."""
    await busy_account(api)
    assert (await api.buy(12)).status_code == 201
    assert await violations(settings) == {}
    # The service's own numbers: 1, 2 for acme, its counter at 2.
    numbers = await sql(
        "SELECT sequence, number FROM invoice WHERE account_id = 'acme' ORDER BY sequence"
    )
    assert [n for n, _ in numbers] == [1, 2]
    assert numbers[0][1].endswith("-0001") and numbers[1][1].endswith("-0002")
    await sql("UPDATE invoice_counter SET last = 3 WHERE account_id = 'acme'")
    found = await violations(settings)
    assert list(found) == ["invoice numbers are gapless and unique per account"]
    assert found["invoice numbers are gapless and unique per account"][0][:2] == ("acme", 2)


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
    "INSERT INTO invoice (id, account_id, sequence, number, kind, status, currency, total, seats,"
    " period_start, period_end, payment_method, created_by, created_at, paid_at, charge_id)"
    " VALUES ('inv_forged', 'acme', 99, 'F-0099', 'purchase', 'paid', 'USD', 0, 100000,"
    " '2026-12-01', '2027-01-01', 'pm_card_visa', 'user:alice', '2026-12-02 00:00:00',"
    " '2026-12-02 00:00:00', NULL)"
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


# R18: a ledger line of any size the columns can store never makes ``seats verify`` fail; it
# answers, exactly, on both databases (PostgreSQL's bigint arithmetic raises on overflow,
# SQLite's SUM raises and its products turn into approximate floats).

BIG = 2**63 - 1


async def failed_purchase(
    sql: Callable[..., Any], invoice_id: str, *lines: tuple[int, ...]
) -> None:
    """A declined purchase as the service writes it: a failed invoice and its lines."""
    total = min(sum(line[2] for line in lines), BIG)
    await sql(
        "INSERT INTO invoice (id, account_id, sequence, number, kind, status, currency, total,"
        " seats, period_start, period_end, payment_method, created_by, created_at, failure_reason)"
        " VALUES (:id, 'acme', :seq, :num, 'purchase', 'failed', 'COP', :total, :seats,"
        " '2026-11-01', '2027-11-01', 'pm_decline_card', 'user:alice', '2026-11-21 12:00:00',"
        " 'card_declined')",
        id=invoice_id,
        total=total,
        seats=lines[0][0],
        **await next_number(sql),
    )
    for position, (quantity, unit_price, amount) in enumerate(lines, 1):
        await sql(
            "INSERT INTO invoice_line (invoice_id, position, description, quantity, unit_price,"
            " amount, period_start, period_end) VALUES (:id, :position, 'seats', :quantity,"
            " :unit_price, :amount, '2026-11-21', '2027-11-01')",
            id=invoice_id,
            position=position,
            quantity=quantity,
            unit_price=unit_price,
            amount=amount,
        )


async def test_r18_verify_holds_on_the_largest_lines_a_declined_purchase_writes(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    assert (await api.start_trial()).status_code == 201
    # COP 8,000,000 a month, yearly, 1,000,000,000 seats declined with 345 of 365 days left.
    seats, cop_year = 10**9, 12 * 8_000_000
    await failed_purchase(sql, "inv_cop", (seats, cop_year, seats * cop_year * 345 // 365))
    # IRR 1,200,000,000 a month, yearly: the seats' price overflows 64 bits, one day does not.
    irr_year = 12 * 1_200_000_000
    await failed_purchase(sql, "inv_irr", (seats, irr_year, seats * irr_year // 365))
    # A line of the whole period at the largest amount the column stores.
    await failed_purchase(sql, "inv_max", (1, BIG, BIG))
    assert await violations(settings) == {}


async def test_r18_verify_reports_overflowing_rows_exactly_instead_of_failing(
    api: Api, settings: Settings, sql: Callable[..., Any]
) -> None:
    assert (await api.start_trial()).status_code == 201
    seats, irr_year = 10**9, 12 * 1_200_000_000
    # One unit less than a day of a 366-day year allows: only exact arithmetic sees it.
    short = (seats * irr_year - 184) // 366
    await failed_purchase(sql, "inv_short", (seats, irr_year, short))
    # Lines that add up past 64 bits: the total cannot match them, and must be reported.
    await failed_purchase(sql, "inv_sum", (1, BIG, BIG), (1, BIG, BIG))
    found = await violations(settings)
    assert set(found) == {
        "every line is a prorated share of its seats' price",
        "invoice total equals the sum of its lines",
    }
    assert [r[:2] for r in found["every line is a prorated share of its seats' price"]] == [
        ("inv_short", 1)
    ]
    assert [r[0] for r in found["invoice total equals the sum of its lines"]] == ["inv_sum"]
    (row,) = found["invoice total equals the sum of its lines"]
    assert (int(str(row[1])), int(str(row[2]))) == (BIG, 2 * BIG)


# R2 has no cap on agents: ``seats verify`` must stay linear in them (one pass over the audit
# log per check, whatever one account holds).

AUDIT_CHECKS = (
    "every agent has its agent.assigned event",
    "every paid purchase and every renewal is in the audit log",
)


async def test_r2_verify_reads_the_audit_log_once_not_once_per_agent(settings: Settings) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the query plan read is SQLite's (PostgreSQL anti-joins by hash)")
    db = Database(settings.database_url)
    try:
        async with db.engine.connect() as conn:
            for name in AUDIT_CHECKS:
                check = CHECKS[name]
                query = check if isinstance(check, str) else check.sql
                plan = await conn.execute(
                    text("EXPLAIN QUERY PLAN " + for_dialect(query, "sqlite"))
                )
                steps = [str(row[3]) for row in plan]
                assert not [s for s in steps if "CORRELATED" in s], (name, steps)
    finally:
        await db.dispose()


async def test_r2_verify_is_exact_on_an_account_with_thousands_of_agents(
    settings: Settings, sql: Callable[..., Any]
) -> None:
    db = Database(settings.database_url)
    try:
        async with db.engine.begin() as conn:
            await seed_agents(conn, 3_000)
    finally:
        await db.dispose()
    assert await violations(settings) == {}
    # One agent more, written without its event: both audit checks name it, and only it.
    await sql(
        "INSERT INTO account_user (account_id, id, email, name, role, created_at, updated_at)"
        " VALUES ('big', 'ghost', 'g@big.test', 'G', 'user', '2026-11-01 00:00:00',"
        " '2026-11-01 00:00:00')"
    )
    await sql(
        "INSERT INTO assignment (account_id, user_id, assigned_at, assigned_by)"
        " VALUES ('big', 'ghost', '2026-11-02 00:00:00', 'u0')"
    )
    await sql("UPDATE plan SET assigned = assigned + 1 WHERE account_id = 'big'")
    found = await violations(settings)
    assert found == {
        "every agent has its agent.assigned event": [("big", "ghost")],
        "agents equal assignments minus unassignments in the audit log": [("big", 3001, 3000)],
    }
