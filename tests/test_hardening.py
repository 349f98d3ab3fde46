"""Hardening found by probing the service as an attacker would: no open redirect, bounded
requests and connections, bounded quotes, dev mode only on loopback, no SQL parameters in
errors, issuer/audience/lifetime of tokens, and a private /metrics."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.auth import TokenVerifier, mint_token
from app.cli import is_loopback, main, startup_warnings
from app.config import Settings, get_settings
from app.db import Database
from app.errors import Unauthenticated
from app.main import create_app
from tests.conftest import NOW, Api, auth, make_settings, problem, seed_directory
from tests.live import LiveServer


@pytest.fixture
async def make_api(database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """``await make_api(**settings)``: a seeded ``Api`` over an app with these settings."""
    apps: list[Any] = []
    clients: list[httpx.AsyncClient] = []

    async def build(seed: bool = True, **overrides: Any) -> Api:
        application = create_app(make_settings(database_url, **overrides))
        apps.append(application)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://test"
        )
        clients.append(client)
        return await seed_directory(Api(client)) if seed else Api(client)

    yield build
    for client in clients:
        await client.aclose()
    for application in apps:
        await application.state.gateway.aclose()
        await application.state.db.dispose()


# --- No redirect built from the Host header


@pytest.mark.parametrize(
    "path",
    ["/healthz/", "/v1/accounts/acme/conversations/", "/v1/accounts/acme/conversations/agents/"],
)
async def test_a_trailing_slash_is_an_unknown_route_not_a_redirect(api: Api, path: str) -> None:
    r = await api.client.get(path, headers={**api.as_user("acme", "alice"), "Host": "evil.example"})
    problem(r, 404, "not_found")
    assert "location" not in r.headers


# --- Quotes are bounded per account


async def test_creating_quotes_beyond_the_cap_drops_the_oldest(
    make_api: Callable[..., Any], sql: Callable[..., Any]
) -> None:
    api = await make_api(max_live_quotes=3)
    assert (await api.start_trial()).status_code == 201
    ids = []
    for i in range(5):
        await api.set_clock(NOW + timedelta(seconds=i))  # distinct ages
        r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 21 + i})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    rows = await sql("SELECT id FROM quote WHERE account_id = 'acme' ORDER BY created_at")
    assert [row[0] for row in rows] == ids[2:]
    problem(await api.buy(21, quote_id=ids[0]), 404, "quote_not_found")
    r = await api.buy(25, quote_id=ids[4])
    assert r.status_code == 201, r.text


async def test_the_quote_cap_is_per_account(
    make_api: Callable[..., Any], sql: Callable[..., Any]
) -> None:
    api = await make_api(max_live_quotes=1)
    assert (await api.start_trial()).status_code == 201
    assert (await api.start_trial("globex", "gina")).status_code == 201
    for account_id, user in (("acme", "alice"), ("globex", "gina"), ("acme", "alice")):
        r = await api.call("POST", account_id, "/quotes", user=user, json={"seats": 30})
        assert r.status_code == 201, r.text
    rows = await sql("SELECT account_id, COUNT(*) FROM quote GROUP BY account_id ORDER BY 1")
    assert [tuple(row) for row in rows] == [("acme", 1), ("globex", 1)]


# --- /metrics behind a bearer token


async def test_metrics_need_the_metrics_token_when_one_is_set(
    make_api: Callable[..., Any],
) -> None:
    api = await make_api(metrics_token="m" * 32)
    body = problem(await api.client.get("/metrics"), 401, "unauthenticated")
    assert "metrics bearer token" in body["detail"]
    problem(await api.client.get("/metrics", headers=auth("m" * 31 + "x")), 401, "unauthenticated")
    # A valid service token is not the metrics token.
    problem(await api.client.get("/metrics", headers=api.as_service()), 401, "unauthenticated")
    r = await api.client.get("/metrics", headers=auth("m" * 32))
    assert r.status_code == 200 and "seats_" in r.text


async def test_metrics_are_open_without_a_metrics_token(api: Api) -> None:
    r = await api.client.get("/metrics")
    assert r.status_code == 200


# --- Tokens: issuer, audience, lifetime


def _verifier(**overrides: Any) -> TokenVerifier:
    return TokenVerifier(make_settings("sqlite://", **overrides))


def _token(ttl: timedelta = timedelta(minutes=5), **overrides: Any) -> str:
    return mint_token(
        make_settings("sqlite://", **overrides), subject="alice", account_id="acme", ttl=ttl
    )


def test_issuer_and_audience_are_enforced_when_set() -> None:
    verifier = _verifier(jwt_issuer="platform", jwt_audience="seats")
    good = _token(jwt_issuer="platform", jwt_audience="seats")
    assert verifier.verify(f"Bearer {good}").account_id == "acme"
    for token, message in [
        (_token(), "The token has no iss claim."),
        (_token(jwt_issuer="platform"), "The token has no aud claim."),
        (
            _token(jwt_issuer="other", jwt_audience="seats"),
            "The token's issuer is not the configured one.",
        ),
        (
            _token(jwt_issuer="platform", jwt_audience="billing"),
            "The token is not meant for this service.",
        ),
    ]:
        with pytest.raises(Unauthenticated) as info:
            verifier.verify(f"Bearer {token}")
        assert info.value.detail == message


def test_a_token_living_longer_than_the_maximum_is_refused() -> None:
    verifier = _verifier(jwt_max_lifetime_seconds=3600)
    assert verifier.verify(f"Bearer {_token(ttl=timedelta(minutes=59))}").subject == "alice"
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(f"Bearer {_token(ttl=timedelta(days=30))}")
    assert "lives longer than the 3600 s" in str(info.value.detail)
    # Without the setting, a long token is the issuer's business.
    assert _verifier().verify(f"Bearer {_token(ttl=timedelta(days=30))}").subject == "alice"


async def test_a_token_for_another_audience_is_401_over_http(make_api: Callable[..., Any]) -> None:
    api = await make_api(seed=False, jwt_audience="seats")
    r = await api.client.get(
        "/v1/accounts/acme/conversations", headers=auth(_token(jwt_audience="billing"))
    )
    body = problem(r, 401, "unauthenticated")
    assert body["detail"] == "The token is not meant for this service."


# --- Dev mode and test switches


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("seats.internal", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5"])
def test_serve_refuses_dev_mode_off_loopback(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATS_DEV", "1")
    monkeypatch.setenv("SEATS_JWT_SECRET", "short")
    monkeypatch.setenv("SEATS_DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as info:
            main(["serve", "--host", host, "--port", "1"])
        assert f"refusing SEATS_DEV=1 on {host}" in str(info.value.code)
    finally:
        get_settings.cache_clear()


def test_startup_warns_loudly_about_test_switches() -> None:
    quiet = Settings(jwt_secret="x" * 32)
    assert startup_warnings(quiet) == []
    loud = Settings(jwt_secret="x" * 32, test_clock=True, fault_point="after_charge")
    warnings = startup_warnings(loud)
    assert len(warnings) == 2
    assert "SEATS_TEST_CLOCK=1" in warnings[0] and "Never in production" in warnings[0]
    assert "SEATS_FAULT_POINT=after_charge" in warnings[1]


def test_the_real_server_logs_the_warnings(database_url: str) -> None:
    server = LiveServer(database_url, workers=1, SEATS_LOG_LEVEL="WARNING").start()
    server.stop()
    assert "!!! SEATS_TEST_CLOCK=1" in server.stderr_text()


# --- SQL parameters never reach an error message


async def test_database_errors_do_not_carry_bound_parameters(database_url: str) -> None:
    db = Database(database_url)
    try:
        with pytest.raises(DBAPIError) as info:
            async with db.transaction() as session:
                await session.execute(
                    text("INSERT INTO account (id, name) VALUES (:id, :name)"),
                    {"id": "acme-pii", "name": "alice@secret.example"},
                )
    finally:
        await db.dispose()
    assert "alice@secret.example" not in str(info.value)
    assert "SQL parameters hidden" in str(info.value)


# --- The real server bounds headers, idle connections and concurrency


def _raw(port: int, request: bytes, timeout: float = 5) -> bytes:
    """Send ``request`` and read until the server closes (or stops sending)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        # The server may answer and close before it has read all of the request.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_the_real_server_refuses_oversized_headers(database_url: str, parser: str) -> None:
    with LiveServer(
        database_url, workers=1, SEATS_MAX_HEADER_BYTES="4096", SEATS_HTTP_PARSER=parser
    ) as server:
        # Large enough to arrive in several reads: both count what is still incomplete.
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4 * 1024 * 1024
        answer = _raw(server.port, big)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        # Many headers, each small, add up the same way.
        many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: aaaaaaaa\r\n" * 2000
        answer = _raw(server.port, many)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        ok = _raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 "), ok[:200]
        # Headers just under the limit, and a body far larger than it, are fine.
        pad = b"X-Pad: " + b"a" * 3500 + b"\r\n"
        near = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + pad + b"Connection: close\r\n\r\n"
        answer = _raw(server.port, near)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        # The limit is per request: a connection's requests do not add up.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            for _ in range(3):
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + pad + b"\r\n")
                answer = b""
                while not answer.endswith(b'{"status":"ok"}'):
                    chunk = s.recv(65536)
                    assert chunk, answer
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        body = b"{" + b" " * 30_000 + b"}"
        post = (
            b"POST /internal/v1/accounts/acme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        answer = _raw(server.port, post)
        assert answer.startswith((b"HTTP/1.1 401 ", b"HTTP/1.1 405 ")), answer[:200]


def test_the_real_server_closes_idle_connections(database_url: str) -> None:
    with LiveServer(database_url, workers=1, SEATS_TIMEOUT_KEEP_ALIVE="1") as server:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while not first.endswith(b'{"status":"ok"}'):  # the whole response, maybe in parts
                chunk = s.recv(65536)
                assert chunk, first
                first += chunk
            assert first.startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            assert s.recv(65536) == b""  # closed by the server, not by our timeout
            assert time.monotonic() - started < 5
        finally:
            s.close()


def test_the_real_server_limits_concurrent_connections(database_url: str) -> None:
    with LiveServer(database_url, workers=1, SEATS_LIMIT_CONCURRENCY="2") as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        try:
            time.sleep(0.3)
            answer = _raw(
                server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        finally:
            for s in idle:
                s.close()
        time.sleep(0.3)
        answer = _raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_the_real_server_counts_made_up_methods_under_one_metrics_label(database_url: str) -> None:
    """h11 passes any token as a method: each one must not become a label of its own."""
    with LiveServer(database_url, workers=1, SEATS_HTTP_PARSER="h11") as server:
        for i in range(30):
            answer = _raw(
                server.port,
                f"ZQMETHOD{i} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
            )
            assert answer.startswith(b"HTTP/1.1 405 "), answer[:200]
        metrics = _raw(
            server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ).decode()
        assert metrics.startswith("HTTP/1.1 200 "), metrics[:200]
        assert "ZQMETHOD" not in metrics
        assert 'method="OTHER"' in metrics
