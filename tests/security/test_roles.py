"""The two database roles (SPEC §7, R11): the runtime role can run the whole seat flow and
nothing more; even the owner cannot rewrite or truncate the ledger.

A database of its own, owned by a non-superuser ``seats_owner`` that migrates it, with the
runtime role ``seats_app`` granted by ``seats migrate``. Every refused statement is checked
by its SQLSTATE and message. The roles have no password: the throwaway cluster of
scripts/with-postgres trusts loopback connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from alembic import command
from sqlalchemy.engine import make_url

from app.cli import main, migrate
from app.config import get_settings
from app.db import Database
from app.main import create_app
from app.roles import RoleError
from app.schema import alembic_config
from app.verify import verify
from tests.conftest import NOW, PG_URL, SECRET, Api, clean_postgres, make_settings, postgres_only
from tests.live import LiveServer

pytestmark = postgres_only

OWNER, APP, DB = "seats_owner", "seats_app", "seats_roles"
SUPERUSER = str(make_url(PG_URL).username) if PG_URL else "postgres"


def _url(user: str, database: str = DB) -> str:
    return make_url(PG_URL).set(username=user, database=database).render_as_string(False)


def _dsn(user: str) -> str:
    return _url(user).replace("postgresql+asyncpg://", "postgresql://")


async def _superuser(*statements: str) -> None:
    conn = await asyncpg.connect(make_url(PG_URL).render_as_string(False).replace("+asyncpg", ""))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _create_role(name: str) -> str:
    return (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') "
        f"THEN CREATE ROLE {name} LOGIN; END IF; END $$"
    )


@pytest.fixture(scope="module")
def roles_db() -> Iterator[None]:
    """``seats_roles``, owned and migrated by ``seats_owner``, granting ``seats_app``."""
    drop = f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"
    asyncio.run(
        _superuser(
            drop, _create_role(OWNER), _create_role(APP), f"CREATE DATABASE {DB} OWNER {OWNER}"
        )
    )
    migrate(make_settings(_url(OWNER), database_app_role=APP))
    yield
    asyncio.run(_superuser(drop, f"DROP ROLE IF EXISTS {APP}", f"DROP ROLE IF EXISTS {OWNER}"))


@pytest.fixture
async def api_as_app(roles_db: None) -> AsyncIterator[Api]:
    """The app connected as the runtime role, on a clean database, with the seeded directory."""
    await clean_postgres(_url(SUPERUSER))
    application = create_app(make_settings(_url(APP)))
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            api = Api(client)
            await api.set_clock(NOW)
            assert (await api.put_account("acme")).status_code == 201
            for user_id, role in (("alice", "primary_admin"), ("bob", "admin"), ("carol", "user")):
                assert (await api.put_user("acme", user_id, role)).status_code == 201
            yield api
    finally:
        await application.state.gateway.aclose()
        await application.state.db.dispose()


async def _violations(user: str) -> list[str]:
    db = Database(_url(user))
    try:
        return [str(v) for v in await verify(db)]
    finally:
        await db.dispose()


async def _paid_history(api: Api) -> None:
    """A trial converted to 25 seats, a declined purchase, one renewal: every ledger table."""
    assert (await api.start_trial()).status_code == 201
    assert (await api.buy(25)).status_code == 201
    await api.put_account("acme", payment_method="pm_decline_card")
    assert (await api.buy(30)).status_code == 402
    await api.put_account("acme", payment_method="pm_card_visa")
    await api.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.status_code == 200 and r.json()["renewals_paid"] == 1, r.text


async def test_runtime_role_runs_the_whole_seat_flow(api_as_app: Api) -> None:
    api = api_as_app
    assert (await api.start_trial()).status_code == 201
    users = await api.add_users(3)
    for user_id in users:
        assert (await api.assign(user_id)).status_code == 201
    r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 25})
    assert r.status_code == 201, r.text
    r = await api.buy(25, quote_id=r.json()["id"])
    assert r.status_code == 201, r.text
    assert (await api.remove(10)).status_code == 200
    assert (await api.unassign(users[0])).status_code == 204
    r = await api.client.delete(
        f"/internal/v1/accounts/acme/users/{users[1]}", headers=api.as_service()
    )
    assert r.status_code == 204, r.text
    await api.put_account("acme", payment_method="pm_decline_card")
    assert (await api.buy(12)).status_code == 402  # a failed invoice: a status update
    await api.put_account("acme", payment_method="pm_card_visa")
    # The renewals of 2026-12-01 and 2027-01-01; a run also purges (DELETE) the expired quote.
    reports = []
    for now in (datetime(2026, 12, 1, 1, tzinfo=UTC), NOW + timedelta(days=42)):
        await api.set_clock(now)
        r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
        assert r.status_code == 200 and r.json()["errors"] == [], r.text
        reports.append(r.json())
    assert [r["renewals_paid"] for r in reports] == [1, 1]
    assert sum(r["quotes_purged"] for r in reports) == 1
    summary = await api.summary()
    assert (summary["status"], summary["seats"], summary["assigned"]) == ("active", 10, 1)
    invoices = (await api.call("GET", "acme", "/invoices", user="alice")).json()["data"]
    kinds = sorted((i["kind"], i["status"]) for i in invoices)
    assert kinds == [
        ("purchase", "failed"),
        ("purchase", "paid"),
        ("renewal", "paid"),
        ("renewal", "paid"),
    ]
    assert await _violations(APP) == []


def _refusals_of_the_runtime_role() -> list[tuple[str, str, str]]:
    denied = "42501"
    return [
        ("UPDATE event SET actor = 'user:mallory'", denied, "permission denied for table event"),
        ("DELETE FROM event", denied, "permission denied for table event"),
        ("TRUNCATE event", denied, "permission denied for table event"),
        ("TRUNCATE invoice CASCADE", denied, "permission denied for table invoice"),
        ("UPDATE invoice SET total = 0", denied, "permission denied for table invoice"),
        ("UPDATE invoice SET seats = 5000", denied, "permission denied for table invoice"),
        ("DELETE FROM invoice", denied, "permission denied for table invoice"),
        ("UPDATE invoice_line SET amount = 0", denied, "permission denied for table invoice_line"),
        ("DELETE FROM invoice_line", denied, "permission denied for table invoice_line"),
        (
            "UPDATE charge_attempt SET payment_method = 'pm_x'",
            denied,
            "permission denied for table charge_attempt",
        ),
        ("DELETE FROM charge_attempt", denied, "permission denied for table charge_attempt"),
        (
            "UPDATE charge_outcome SET outcome = 'declined'",
            denied,
            "permission denied for table charge_outcome",
        ),
        ("DELETE FROM charge_outcome", denied, "permission denied for table charge_outcome"),
        ("DELETE FROM plan", denied, "permission denied for table plan"),
        ("DELETE FROM account", denied, "permission denied for table account"),
        (
            "UPDATE assignment SET assigned_by = 'x'",
            denied,
            "permission denied for table assignment",
        ),
        ("UPDATE quote SET due_now = 0", denied, "permission denied for table quote"),
        (
            "UPDATE alembic_version SET version_num = 'x'",
            denied,
            "permission denied for table alembic_version",
        ),
        (
            "ALTER TABLE invoice DISABLE TRIGGER invoice_one_way_status",
            denied,
            "must be owner of table invoice",
        ),
        ("ALTER TABLE event DISABLE TRIGGER ALL", denied, "must be owner of table event"),
        ("DROP TRIGGER event_append_only ON event", denied, "must be owner of relation event"),
        ("DROP TRIGGER event_no_truncate ON event", denied, "must be owner of relation event"),
        ("DROP TABLE event", denied, "must be owner of table event"),
        (
            "ALTER TABLE plan DROP CONSTRAINT ck_plan_assigned_le_seats",
            denied,
            "must be owner of table plan",
        ),
        (
            "CREATE OR REPLACE FUNCTION seats_append_only() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RETURN NEW; END $$",
            denied,
            "permission denied for schema public",
        ),
        ("CREATE TABLE shadow (id int)", denied, "permission denied for schema public"),
        (
            "CREATE TRIGGER t BEFORE UPDATE ON plan FOR EACH ROW "
            "EXECUTE FUNCTION seats_append_only()",
            denied,
            "permission denied for table plan",
        ),
        (
            "SET session_replication_role = replica",
            denied,
            'permission denied to set parameter "session_replication_role"',
        ),
        # The privilege allows a status change; the trigger allows only pending -> final.
        (
            "UPDATE invoice SET status = 'pending', paid_at = NULL WHERE status = 'paid'",
            "23001",
            "may only change once",
        ),
    ]


async def _refused(user: str, statement: str) -> asyncpg.PostgresError:
    conn = await asyncpg.connect(_dsn(user))
    try:
        with pytest.raises(asyncpg.PostgresError) as info:
            await conn.execute(statement)
        return info.value
    finally:
        await conn.close()


async def test_runtime_role_is_refused_every_forbidden_statement(api_as_app: Api) -> None:
    await _paid_history(api_as_app)
    for statement, sqlstate, message in _refusals_of_the_runtime_role():
        error = await _refused(APP, statement)
        assert (error.sqlstate, message in str(error)) == (sqlstate, True), (statement, error)
    assert await _violations(APP) == []


async def test_owner_cannot_rewrite_or_truncate_the_ledger(api_as_app: Api) -> None:
    await _paid_history(api_as_app)
    append_only = "23001"  # restrict_violation, raised by the triggers
    for statement, message in [
        ("UPDATE event SET actor = 'user:mallory'", "table event is append-only (UPDATE)"),
        ("DELETE FROM event", "table event is append-only (DELETE)"),
        ("TRUNCATE event", "table event is append-only (TRUNCATE)"),
        ("TRUNCATE invoice_line", "table invoice_line is append-only (TRUNCATE)"),
        ("TRUNCATE charge_attempt CASCADE", "is append-only (TRUNCATE)"),
        ("TRUNCATE charge_outcome", "table charge_outcome is append-only (TRUNCATE)"),
        ("TRUNCATE invoice CASCADE", "is append-only (TRUNCATE)"),
        ("DELETE FROM invoice", "table invoice is append-only (DELETE)"),
        ("UPDATE invoice SET total = 0 WHERE status = 'paid'", "may only change once"),
        ("UPDATE invoice SET seats = 5000", "may only change once"),
        ("UPDATE invoice_line SET amount = 0", "table invoice_line is append-only (UPDATE)"),
        ("DELETE FROM charge_attempt", "table charge_attempt is append-only (DELETE)"),
        ("DELETE FROM charge_outcome", "table charge_outcome is append-only (DELETE)"),
    ]:
        error = await _refused(OWNER, statement)
        assert (error.sqlstate, message in str(error)) == (append_only, True), (statement, error)
    # Nor can it switch the triggers off for its session: that setting is a superuser's.
    error = await _refused(OWNER, "SET session_replication_role = replica")
    assert error.sqlstate == "42501"
    assert await _violations(OWNER) == []


async def test_grants_are_exact_and_re_applied_by_every_migrate(api_as_app: Api) -> None:
    # Something granted by hand since the last migration is taken back by the next one.
    await _superuser_on_roles_db(f"GRANT DELETE, TRUNCATE ON event TO {APP}")
    await asyncio.to_thread(migrate, make_settings(_url(OWNER), database_app_role=APP))
    conn = await asyncpg.connect(_dsn(OWNER))
    try:
        rows = await conn.fetch(
            "SELECT table_name, privilege_type FROM information_schema.table_privileges "
            "WHERE grantee = $1",
            APP,
        )
        functions = await conn.fetch(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,"
            " a.privilege_type FROM pg_proc p, aclexplode(p.proacl) a"
            " WHERE p.proname = 'seats_agent_check'"
        )
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.column_privileges "
            "WHERE grantee = $1 AND table_name = 'invoice' AND privilege_type = 'UPDATE'",
            APP,
        )
    finally:
        await conn.close()
    granted: dict[str, set[str]] = {}
    for row in rows:
        granted.setdefault(row["table_name"], set()).add(row["privilege_type"])
    read_insert = {"SELECT", "INSERT"}
    expected = {
        "account": read_insert | {"UPDATE"},
        "account_user": read_insert | {"UPDATE", "DELETE"},
        "plan": read_insert | {"UPDATE"},
        "assignment": read_insert | {"DELETE"},
        "quote": read_insert | {"DELETE"},
        "idempotency_key": read_insert | {"UPDATE", "DELETE"},
        "test_clock": read_insert | {"UPDATE"},
        "invoice": read_insert,  # UPDATE of four columns only, below
        "invoice_line": read_insert,
        "invoice_counter": read_insert | {"UPDATE"},
        "reminder": read_insert,  # a reminder sent is never unsent (R16)
        "charge_attempt": read_insert,
        "charge_outcome": read_insert,
        "event": read_insert,
        "webhook_endpoint": read_insert | {"UPDATE", "DELETE"},
        "webhook_delivery": read_insert | {"UPDATE", "DELETE"},
        "webhook_attempt": read_insert | {"DELETE"},
        "alembic_version": {"SELECT"},
    }
    assert granted == expected
    # The agent check's function: the runtime role may call it, PUBLIC may not.
    assert sorted(tuple(row) for row in functions) == [(APP, "EXECUTE"), (OWNER, "EXECUTE")]
    assert {"TRUNCATE", "DELETE"}.isdisjoint(granted["event"] | granted["invoice"])
    assert sorted(r["column_name"] for r in columns) == [
        "charge_id",
        "failure_reason",
        "paid_at",
        "status",
    ]


async def _superuser_on_roles_db(*statements: str) -> None:
    conn = await asyncpg.connect(_dsn(SUPERUSER))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_migrate_refuses_a_table_the_privilege_map_does_not_name(
    api_as_app: Api,
) -> None:
    await _superuser_on_roles_db(
        f"CREATE TABLE forgotten (id int); ALTER TABLE forgotten OWNER TO {OWNER}"
    )
    try:
        with pytest.raises(RoleError, match=r"forgotten are not in app\.roles\.PRIVILEGES"):
            await asyncio.to_thread(migrate, make_settings(_url(OWNER), database_app_role=APP))
    finally:
        await _superuser_on_roles_db("DROP TABLE forgotten")


@pytest.mark.parametrize(
    ("role", "message"),
    [
        ("nobody_here", "does not exist"),
        (OWNER, "is the migrating owner itself"),
        (SUPERUSER, "is a superuser"),
        ("Robert'); DROP TABLE event;--", "is not a plain lower-case role name"),
    ],
)
def test_migrate_refuses_a_runtime_role_it_cannot_limit(
    roles_db: None, role: str, message: str
) -> None:
    with pytest.raises(RoleError, match=message):
        migrate(make_settings(_url(OWNER), database_app_role=role))


def test_serve_no_migrate_refuses_a_schema_behind_head(
    roles_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    behind = "seats_roles_behind"
    asyncio.run(
        _superuser(
            f"DROP DATABASE IF EXISTS {behind} WITH (FORCE)",
            f"CREATE DATABASE {behind} OWNER {OWNER}",
        )
    )
    try:
        cfg = alembic_config(None)
        cfg.attributes.update(url=_url(OWNER, behind), configure_logging=False, app_role=None)
        command.upgrade(cfg, "0002_seats_ledger")
        monkeypatch.setenv("SEATS_DATABASE_URL", _url(OWNER, behind))
        monkeypatch.setenv("SEATS_JWT_SECRET", SECRET)
        get_settings.cache_clear()
        with pytest.raises(SystemExit) as info:
            main(["serve", "--no-migrate", "--port", "1"])
        assert "refusing to serve: the database schema is at revision 0002_seats_ledger" in str(
            info.value.code
        )
        assert "run `seats migrate` as the database owner first" in str(info.value.code)
    finally:
        get_settings.cache_clear()
        asyncio.run(_superuser(f"DROP DATABASE IF EXISTS {behind} WITH (FORCE)"))


async def test_runtime_role_runs_the_agent_check_behind_a_transaction_pooler(
    api_as_app: Api,
) -> None:
    # Behind a transaction pooler the check calls seats_agent_check, which PUBLIC may not.
    assert (await api_as_app.start_trial()).status_code == 201
    assert (await api_as_app.assign("carol")).status_code == 201
    application = create_app(make_settings(_url(APP), database_pooler="transaction"))
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            api = Api(client)
            for user_id, agent in (("carol", True), ("bob", False)):
                r = await api.call("GET", "acme", f"/agents/{user_id}", user="alice")
                assert r.status_code == 200, r.text
                assert r.json() == {"user_id": user_id, "agent": agent, "active": agent}
    finally:
        await application.state.gateway.aclose()
        await application.state.db.dispose()


async def test_the_real_server_serves_as_the_runtime_role(api_as_app: Api) -> None:
    await _paid_history(api_as_app)
    server = LiveServer(_url(APP), workers=1, args=("--no-migrate",))
    await asyncio.to_thread(server.start)  # ready: /readyz answered 200 as the runtime role
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            r = await client.get(
                "/v1/accounts/acme/conversations", headers=api_as_app.as_user("acme", "alice")
            )
            assert (r.status_code, r.json()["seats"]) == (200, 25), r.text
            r = await client.post(
                "/v1/accounts/acme/conversations/purchases",
                json={"seats": 26},
                headers={**api_as_app.as_user("acme", "alice"), "Idempotency-Key": "k-live"},
            )
            assert r.status_code == 201, r.text
    finally:
        server.stop()
