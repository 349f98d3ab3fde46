"""Operations (SPEC §4 Operations, §7): health, readiness, metrics, docs, test clock, migrate."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from app.cli import migrate
from app.config import Settings
from app.main import create_app
from app.schema import alembic_config, head_revision
from tests.conftest import NOW, ON_POSTGRES, Api, make_settings, postgres_only, problem

sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="SQLite file behaviour")
HEAD = head_revision(Settings(jwt_secret="x" * 32).alembic_ini)


@contextlib.asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app of its own (other settings than the ``api`` fixture's), disposed afterwards."""
    application = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield application, client
    finally:
        await application.state.gateway.aclose()
        await application.state.db.dispose()


async def seed(api: Api) -> None:
    await api.set_clock(NOW)
    assert (await api.put_account("acme")).status_code in (200, 201)
    assert (await api.put_user("acme", "alice", "primary_admin")).status_code in (200, 201)


# --- health and readiness -------------------------------------------------------------------


async def test_healthz_answers_ok(api: Api) -> None:
    r = await api.client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["x-request-id"]


async def test_readyz_answers_ready_with_the_revision(api: Api) -> None:
    r = await api.client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "revision": HEAD}
    assert HEAD is not None


def _migrate_to(url: str, revision: str) -> None:
    cfg = alembic_config(make_settings(url).alembic_ini)
    cfg.attributes["url"] = url
    cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, revision)


def _revision(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


@pytest.fixture
def directory_only_db(tmp_path: Path) -> str:
    """A SQLite database migrated only to the first revision (sync: alembic runs its own loop)."""
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    _migrate_to(url, "0001_directory")
    assert _revision(path) == "0001_directory"
    return url


async def test_readyz_not_ready_when_migrations_are_not_at_head(directory_only_db: str) -> None:
    async with app_client(make_settings(directory_only_db)) as (_, client):
        r = await client.get("/readyz")
        body = problem(r, 503, "not_ready")
        assert "0001_directory" in body["detail"]
        assert HEAD is not None and HEAD in body["detail"]
        assert r.headers["retry-after"]
        # migrating while the app runs makes it ready, without a restart
        await asyncio.to_thread(_migrate_to, directory_only_db, "head")
        r = await client.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["revision"] == HEAD


def test_cli_migrate_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "seats.db"
    settings = make_settings(f"sqlite+aiosqlite:///{path}")
    migrate(settings)
    assert _revision(path) == HEAD
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        conn.execute(
            "INSERT INTO account (id, name, billing_cycle, billing_anchor, payment_method, "
            "currency, created_at, updated_at) VALUES ('keep', 'Keep', 'monthly', '2026-11-01', "
            "'pm_card_visa', 'USD', '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
        )
        conn.commit()
    assert {"account", "account_user", "plan", "invoice", "event"} <= tables
    migrate(settings)  # again: nothing to do, nothing lost
    assert _revision(path) == HEAD
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT id FROM account").fetchall() == [("keep",)]
        assert conn.execute("SELECT COUNT(*) FROM alembic_version").fetchone() == (1,)


# --- the database goes away and comes back --------------------------------------------------


class TcpProxy:
    """A loopback TCP proxy to the database that can be cut and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.BaseTransport] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and drop every open connection, as a crashed server would."""
        assert self.server is not None
        self.server.close()
        for transport in list(self.transports):
            transport.abort()  # type: ignore[attr-defined]
        self.transports.clear()
        await self.server.wait_closed()
        self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.transports |= {writer.transport, up_writer.transport}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


async def _assert_unavailable(api: Api) -> None:
    problem(await api.client.get("/readyz"), 503, "not_ready")
    r = await api.call("GET", "acme", user="alice")
    problem(r, 503, "service_unavailable")
    assert r.headers["retry-after"]
    problem(await api.start_trial(), 503, "service_unavailable")
    # the process itself is alive
    assert (await api.client.get("/healthz")).status_code == 200


async def _assert_available(api: Api) -> None:
    r = await api.client.get("/readyz")
    assert r.status_code == 200, r.text
    r = await api.call("GET", "acme", user="alice")
    assert r.status_code == 200, r.text


@postgres_only
async def test_readyz_and_api_answer_503_while_postgres_is_away_then_recover(
    database_url: str,
) -> None:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        async with app_client(make_settings(proxied)) as (_, client):
            api = Api(client)
            await seed(api)
            await _assert_available(api)

            await proxy.stop()
            await _assert_unavailable(api)
            await _assert_unavailable(api)  # still away: still 503, never 500

            await proxy.start()  # same port: the app was not restarted or reconfigured
            await _assert_available(api)
            r = await api.start_trial()
            assert r.status_code == 201, r.text
            assert (await api.summary())["status"] == "trialing"
    finally:
        if proxy.server is not None:
            await proxy.stop()


def _move(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        source = src.with_name(src.name + suffix)
        if source.exists():
            source.rename(dst.with_name(dst.name + suffix))


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


@sqlite_only
async def test_readyz_and_api_answer_503_while_the_sqlite_file_is_away_then_recover(
    settings: Settings,
) -> None:
    path = Path(make_url(settings.database_url).database or "")
    away = path.with_name("away.db")
    async with app_client(settings) as (_, client):
        api = Api(client)
        await seed(api)
        await _assert_available(api)

        _move(path, away)
        # SQLite connections are not pooled: the next request opens the configured path and
        # finds a new, empty file in its place.
        await _assert_unavailable(api)
        assert path.exists()  # SQLite made a new, empty database file: not at head

        _remove(path)
        _move(away, path)
        await _assert_available(api)
        assert (await api.start_trial()).status_code == 201


# --- metrics --------------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


ROUTE = "/v1/accounts/{account_id}/conversations"


async def test_metrics_count_requests_by_route_template(api: Api) -> None:
    counter = (
        "seats_http_requests_total",
        frozenset({("method", "GET"), ("route", ROUTE), ("status", "200")}),
    )
    latency_count = (
        "seats_http_request_duration_seconds_count",
        frozenset({("method", "GET"), ("route", ROUTE)}),
    )
    before = _samples((await api.client.get("/metrics")).text)
    for account in ("acme", "globex", "acme"):
        assert (await api.call("GET", account)).status_code == 200
    r = await api.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    after = _samples(r.text)
    assert after[counter] - before.get(counter, 0.0) == 3
    assert after[latency_count] - before.get(latency_count, 0.0) == 3
    buckets = [
        (dict(labels)["le"], value)
        for (name, labels), value in after.items()
        if name == "seats_http_request_duration_seconds_bucket" and ("route", ROUTE) in labels
    ]
    assert len(buckets) > 5
    assert ("+Inf", after[latency_count]) in buckets
    # the template, never the account id, is the label: no label per account
    assert "/v1/accounts/acme" not in r.text
    assert "/v1/accounts/globex" not in r.text


async def test_metrics_do_not_grow_a_label_per_unknown_path(api: Api) -> None:
    for i in range(3):
        assert (await api.client.get(f"/no-such-page-{i}-zq")).status_code == 404
    text = (await api.client.get("/metrics")).text
    assert "no-such-page" not in text
    assert 'route="unmatched"' in text


async def test_metrics_count_unknown_methods_under_one_label(api: Api) -> None:
    """The method is the client's to choose: one made up per request must not grow a label
    (and a metric child, in memory and in every scrape) per request."""
    other = ("seats_http_requests_total", frozenset({("method", "OTHER")}))
    before = _samples((await api.client.get("/metrics")).text)
    for i in range(5):
        r = await api.client.request(f"ZQMETHOD{i}", "/healthz")
        assert r.status_code == 405
    text = (await api.client.get("/metrics")).text
    assert "ZQMETHOD" not in text
    after = _samples(text)

    def others(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        return sum(v for (n, labels), v in samples.items() if n == other[0] and other[1] <= labels)

    assert others(after) - others(before) == 5


# --- docs and OpenAPI -----------------------------------------------------------------------


async def test_docs_use_no_external_url_and_their_assets_load(api: Api) -> None:
    r = await api.client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert re.findall(r"(?i)(?:https?:)?//[a-z0-9.-]+", html) == []
    # Swagger UI's default validatorUrl would load a badge from validator.swagger.io
    assert re.search(r'"validatorUrl":\s*null', html)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/docs-assets/swagger-ui-bundle.js" in assets
    assert "/docs-assets/swagger-ui.css" in assets
    for asset in assets:
        loaded = await api.client.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 0
    spec_url = re.search(r"url:\s*'([^']+)'", html)
    assert spec_url is not None
    assert (await api.client.get(spec_url.group(1))).status_code == 200
    js = await api.client.get("/docs-assets/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"]
    assert "SwaggerUIBundle" in js.text


SPEC_OPERATIONS = {
    ("get", ROUTE),
    ("post", ROUTE + "/trial"),
    ("get", ROUTE + "/quote-preview"),
    ("post", ROUTE + "/quotes"),
    ("post", ROUTE + "/purchases"),
    ("post", ROUTE + "/removals"),
    ("get", ROUTE + "/agents"),
    ("get", ROUTE + "/users"),
    ("put", ROUTE + "/agents/{user_id}"),
    ("delete", ROUTE + "/agents/{user_id}"),
    ("get", ROUTE + "/agents/{user_id}"),
    ("get", ROUTE + "/invoices"),
    ("get", ROUTE + "/invoices/{invoice_id}"),
    ("post", ROUTE + "/invoices/{invoice_id}/pay"),
    ("get", ROUTE + "/events"),
    ("put", "/internal/v1/accounts/{account_id}"),
    ("put", "/internal/v1/accounts/{account_id}/users/{user_id}"),
    ("delete", "/internal/v1/accounts/{account_id}/users/{user_id}"),
    ("post", "/internal/v1/billing/run"),
    ("put", "/internal/v1/test-clock"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
}


async def test_openapi_lists_every_spec_endpoint(api: Api) -> None:
    r = await api.client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    listed = {
        (method, path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "delete", "patch")
    }
    assert SPEC_OPERATIONS - listed == set()


async def test_openapi_declares_problem_json_errors(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in str(spec)
    problem_schema = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem_schema["required"])
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            errors = {s: resp for s, resp in operation["responses"].items() if s[0] in "45"}
            assert "500" in errors, (method, path)
            for status, response in errors.items():
                assert list(response["content"]) == ["application/problem+json"]
                ref = response["content"]["application/problem+json"]["schema"]["$ref"]
                schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
                assert set(problem_schema["required"]) <= set(schema["required"])
                assert schema["properties"]["code"]["enum"], (method, path, status)
            if path.startswith(("/v1/", "/internal/")):
                assert {"401", "422"} <= set(errors), (method, path)
                assert operation["security"] == [{"bearer": []}]
    purchases = spec["paths"][ROUTE + "/purchases"]["post"]["responses"]
    assert {"400", "402", "403", "409"} <= set(purchases)
    assert "201" in purchases


# --- the test clock -------------------------------------------------------------------------


async def test_test_clock_is_not_found_when_disabled(database_url: str) -> None:
    async with app_client(make_settings(database_url, test_clock=False)) as (_, client):
        api = Api(client)
        r = await client.put(
            "/internal/v1/test-clock",
            json={"now": "2030-01-01T00:00:00Z"},
            headers=api.as_service(),
        )
        problem(r, 404, "not_found")
        # time is the wall clock's: a trial starts now, not in 2030
        assert (await api.put_account("acme")).status_code == 201
        assert (await api.put_user("acme", "alice", "primary_admin")).status_code == 201
        before = datetime.now(UTC)
        r = await api.start_trial()
        after = datetime.now(UTC)
        assert r.status_code == 201, r.text
        started = datetime.fromisoformat(r.json()["trial"]["started_at"])
        assert before - timedelta(seconds=1) <= started <= after + timedelta(seconds=1)


async def test_test_clock_moves_time(api: Api, settings: Settings) -> None:
    moment = datetime(2027, 3, 5, 8, 30, 15, tzinfo=UTC)
    await api.set_clock(moment)
    r = await api.start_trial()
    assert r.status_code == 201, r.text
    trial = r.json()["trial"]
    assert datetime.fromisoformat(trial["started_at"]) == moment
    assert datetime.fromisoformat(trial["ends_at"]) == moment + timedelta(days=14)
    # every worker reads it from the database
    async with app_client(settings) as (_, other):
        summary = await Api(other).summary()
        assert datetime.fromisoformat(summary["trial"]["started_at"]) == moment


async def test_test_clock_needs_an_aware_time_and_a_service(api: Api) -> None:
    r = await api.client.put(
        "/internal/v1/test-clock", json={"now": "2027-01-01T00:00:00"}, headers=api.as_service()
    )
    problem(r, 422, "validation_error")
    r = await api.client.put(
        "/internal/v1/test-clock",
        json={"now": "2027-01-01T00:00:00Z"},
        headers=api.as_user("acme", "alice"),
    )
    problem(r, 403, "service_token_required")
