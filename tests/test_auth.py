"""Authentication and authorization (SPEC §4, Authentication; R1 cannot be bypassed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app import cli as seats_cli
from app import config as seats_config
from app.main import create_app
from tests.conftest import (
    SECRET,
    Api,
    auth,
    make_settings,
    problem,
    service_token,
    user_token,
)

SUMMARY = "/v1/accounts/acme/conversations"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _segment(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def _future() -> int:
    return int((datetime.now(UTC) + timedelta(hours=1)).timestamp())


def _hs256(claims: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def _hand_signed_hs256(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed by hand (PyJWT refuses a PEM key as an HMAC secret)."""
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _unauthenticated(response: httpx.Response) -> None:
    problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


# --- 401: every failure of the token --------------------------------------------------------


async def test_missing_authorization_header_is_unauthenticated(api: Api) -> None:
    _unauthenticated(await api.client.get(SUMMARY))


async def _refused(api: Api, headers: list[str]) -> None:
    for header in headers:
        r = await api.client.get(SUMMARY, headers={"Authorization": header})
        assert r.status_code == 401, (header[:40], r.text)
        _unauthenticated(r)


async def test_non_bearer_scheme_is_unauthenticated(api: Api) -> None:
    token = user_token("acme", "alice")
    basic = base64.b64encode(b"alice:secret").decode()
    await _refused(api, [f"Basic {basic}", f"Token {token}", f"JWT {token}", token])
    # the same token with the Bearer scheme (in any case) works
    for scheme in ("Bearer", "bearer"):
        r = await api.client.get(SUMMARY, headers={"Authorization": f"{scheme} {token}"})
        assert r.status_code == 200, r.text


async def test_empty_bearer_token_is_unauthenticated(api: Api) -> None:
    await _refused(api, ["Bearer", "Bearer ", "Bearer    ", ""])


async def test_garbage_token_is_unauthenticated(api: Api) -> None:
    await _refused(api, ["Bearer garbage", "Bearer a.b.c", "Bearer ...", "Bearer " + "x" * 5000])


async def test_expired_token_is_unauthenticated(api: Api) -> None:
    token = user_token("acme", "alice", ttl=timedelta(seconds=-60))
    _unauthenticated(await api.client.get(SUMMARY, headers=auth(token)))
    # the same token, still valid, is accepted: the expiry is what was refused
    fresh = user_token("acme", "alice")
    assert (await api.client.get(SUMMARY, headers=auth(fresh))).status_code == 200


async def test_token_signed_with_another_secret_is_unauthenticated(api: Api) -> None:
    claims = {"sub": "alice", "account_id": "acme", "exp": _future()}
    assert (await api.client.get(SUMMARY, headers=auth(_hs256(claims)))).status_code == 200
    forged = _hs256(claims, key="another-secret-" + "y" * 40)
    _unauthenticated(await api.client.get(SUMMARY, headers=auth(forged)))


async def test_alg_none_token_is_unauthenticated(api: Api) -> None:
    claims = {"sub": "alice", "account_id": "acme", "exp": _future()}
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "None", "typ": "JWT"}):
        token = f"{_segment(header)}.{_segment(claims)}."
        _unauthenticated(await api.client.get(SUMMARY, headers=auth(token)))


async def test_tampered_payload_is_unauthenticated(api: Api) -> None:
    header, _, signature = user_token("acme", "carol").split(".")
    promoted = _segment({"sub": "alice", "account_id": "acme", "exp": _future()})
    token = f"{header}.{promoted}.{signature}"
    _unauthenticated(await api.client.get(SUMMARY, headers=auth(token)))


async def _refused_claims(api: Api, cases: list[dict[str, Any]]) -> None:
    for claims in cases:
        full = {k: v for k, v in {"exp": _future(), **claims}.items() if v is not None}
        # PyJWT refuses a non-string sub when encoding: sign these by hand
        token = _hand_signed_hs256(full, SECRET.encode())
        r = await api.client.get(SUMMARY, headers=auth(token))
        assert r.status_code == 401, (claims, r.text)
        _unauthenticated(r)


async def test_token_without_sub_is_unauthenticated(api: Api) -> None:
    await _refused_claims(api, [{"account_id": "acme"}, {"sub": None, "account_id": "acme"}])


async def test_token_without_exp_is_unauthenticated(api: Api) -> None:
    await _refused_claims(
        api,
        [
            {"sub": "alice", "account_id": "acme", "exp": None},
            {"sub": "platform", "scope": "seats:internal", "exp": None},
        ],
    )


async def test_token_without_account_id_or_service_scope_is_unauthenticated(api: Api) -> None:
    await _refused_claims(
        api,
        [
            {"sub": "alice"},
            {"sub": "alice", "scope": "seats:read other"},
            {"sub": "alice", "scope": "seats:internalx"},
            {"sub": "alice", "scope": 1},
        ],
    )


async def test_token_with_bad_sub_is_unauthenticated(api: Api) -> None:
    await _refused_claims(
        api,
        [
            {"sub": "a b", "account_id": "acme"},
            {"sub": "", "account_id": "acme"},
            {"sub": "x" * 65, "account_id": "acme"},
            {"sub": 42, "account_id": "acme"},
            {"sub": "alice/../bob", "account_id": "acme"},
        ],
    )


async def test_token_with_bad_account_id_is_unauthenticated(api: Api) -> None:
    await _refused_claims(
        api,
        [
            {"sub": "alice", "account_id": "acme!"},
            {"sub": "alice", "account_id": ""},
            {"sub": "alice", "account_id": 7},
            {"sub": "alice", "account_id": "a" * 65},
            {"sub": "alice", "account_id": ["acme"]},
        ],
    )


async def test_hand_signed_valid_token_is_accepted(api: Api) -> None:
    """The hand signer above is right: with good claims it gives a working token."""
    claims = {"sub": "alice", "account_id": "acme", "exp": _future()}
    token = _hand_signed_hs256(claims, SECRET.encode())
    assert (await api.client.get(SUMMARY, headers=auth(token))).status_code == 200


async def test_service_scope_as_a_list_is_accepted(api: Api) -> None:
    token = _hs256({"sub": "billing", "scope": ["seats:internal"], "exp": _future()})
    assert (await api.client.get(SUMMARY, headers=auth(token))).status_code == 200


# --- RS256 and HS/RS confusion --------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture
async def rs_client(
    database_url: str, rsa_keys: tuple[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    _, public_pem = rsa_keys
    settings = make_settings(database_url, jwt_public_key=public_pem, jwt_secret="")
    assert settings.jwt_algorithm == "RS256"
    application = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await application.state.gateway.aclose()
        await application.state.db.dispose()


def _rs256(private_pem: str, claims: dict[str, Any]) -> str:
    return jwt.encode({"exp": _future(), **claims}, private_pem, algorithm="RS256")


async def test_rs256_token_signed_with_private_key_works(
    rs_client: httpx.AsyncClient, rsa_keys: tuple[str, str]
) -> None:
    private_pem, _ = rsa_keys
    service = auth(_rs256(private_pem, {"sub": "platform", "scope": "seats:internal"}))
    body = {
        "name": "Acme",
        "billing_cycle": "monthly",
        "billing_anchor": "2026-11-01",
        "payment_method": "pm_card_visa",
    }
    r = await rs_client.put("/internal/v1/accounts/acme", json=body, headers=service)
    assert r.status_code == 201, r.text
    user = {"email": "alice@acme.test", "name": "Alice", "role": "primary_admin"}
    r = await rs_client.put("/internal/v1/accounts/acme/users/alice", json=user, headers=service)
    assert r.status_code == 201, r.text
    alice = auth(_rs256(private_pem, {"sub": "alice", "account_id": "acme"}))
    r = await rs_client.get(SUMMARY, headers=alice)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "none"


async def test_hs256_token_keyed_with_the_public_key_is_refused(
    rs_client: httpx.AsyncClient, rsa_keys: tuple[str, str]
) -> None:
    private_pem, public_pem = rsa_keys
    claims = {"sub": "platform", "scope": "seats:internal", "exp": _future()}
    body = {
        "name": "Acme",
        "billing_cycle": "monthly",
        "billing_anchor": "2026-11-01",
        "payment_method": "pm_card_visa",
    }
    for key in (public_pem.encode(), public_pem.strip().encode()):
        forged = _hand_signed_hs256(claims, key)
        r = await rs_client.put("/internal/v1/accounts/acme", json=body, headers=auth(forged))
        _unauthenticated(r)
    # the HS256 secret the app would use without a public key is refused as well
    r = await rs_client.put("/internal/v1/accounts/acme", json=body, headers=auth(service_token()))
    _unauthenticated(r)
    # and the same claims, RS256-signed, pass: only the algorithm/key was wrong
    r = await rs_client.put(
        "/internal/v1/accounts/acme", json=body, headers=auth(_rs256(private_pem, claims))
    )
    assert r.status_code == 201, r.text


async def test_rs256_token_signed_with_another_key_is_refused(
    rs_client: httpx.AsyncClient,
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token = _rs256(other_pem, {"sub": "platform", "scope": "seats:internal"})
    _unauthenticated(await rs_client.get(SUMMARY, headers=auth(token)))


# --- 403 / 404: who may do what -------------------------------------------------------------


async def test_user_token_on_another_accounts_path_is_not_found(api: Api) -> None:
    alice = api.as_user("acme", "alice")
    for path in ("", "/agents", "/agents/gina", "/invoices", "/events"):
        r = await api.client.get(f"/v1/accounts/globex/conversations{path}", headers=alice)
        problem(r, 404, "not_found")
    r = await api.client.post("/v1/accounts/globex/conversations/trial", headers=alice)
    problem(r, 404, "not_found")
    # the answer for an account that does not exist is the same: no leak of which ids exist
    r = await api.client.get("/v1/accounts/nope/conversations", headers=alice)
    problem(r, 404, "not_found")
    # nothing happened to globex
    assert (await api.summary("globex", user="gina"))["status"] == "none"


async def test_valid_token_of_user_not_in_directory_is_unknown_user(api: Api) -> None:
    r = await api.call("GET", "acme", user="zed")
    problem(r, 403, "unknown_user")
    r = await api.start_trial(user="zed")
    problem(r, 403, "unknown_user")
    # a user of globex claiming to be of acme is not in acme's directory
    r = await api.call("GET", "acme", user="gina")
    problem(r, 403, "unknown_user")


async def test_user_token_on_internal_endpoints_is_service_token_required(api: Api) -> None:
    alice = api.as_user("acme", "alice")
    account = {
        "name": "Acme",
        "billing_cycle": "yearly",
        "billing_anchor": "2026-11-01",
        "payment_method": "pm_card_visa",
    }
    user = {"email": "x@acme.test", "name": "X", "role": "primary_admin"}
    calls = [
        ("PUT", "/internal/v1/accounts/acme", account),
        ("PUT", "/internal/v1/accounts/acme/users/alice", user),
        ("PUT", "/internal/v1/accounts/acme/users/mallory", user),
        ("DELETE", "/internal/v1/accounts/acme/users/carol", None),
        ("POST", "/internal/v1/billing/run", None),
        ("PUT", "/internal/v1/test-clock", {"now": "2030-01-01T00:00:00Z"}),
    ]
    for method, path, body in calls:
        r = await api.client.request(method, path, json=body, headers=alice)
        problem(r, 403, "service_token_required")
    r = await api.call("GET", "acme", "/agents/carol")
    assert r.status_code == 200  # carol still exists
    summary = await api.summary()
    assert summary["billing_cycle"] == "monthly"


async def test_r1_service_token_cannot_start_trial_buy_or_remove(api: Api) -> None:
    r = await api.call("POST", "acme", "/trial")
    problem(r, 403, "not_primary_admin")
    r = await api.call("POST", "acme", "/purchases", json={"seats": 5}, key=uuid.uuid4().hex)
    problem(r, 403, "not_primary_admin")
    r = await api.call("POST", "acme", "/purchases", json={"seats": 5})
    problem(r, 403, "not_primary_admin")
    r = await api.call("POST", "acme", "/removals", json={"seats": 0})
    problem(r, 403, "not_primary_admin")
    assert (await api.summary())["status"] == "none"
    r = await api.call("GET", "acme", "/invoices")
    assert r.json()["data"] == []


async def test_service_token_cannot_quote_or_manage_agents(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    r = await api.call("POST", "acme", "/quotes", json={"seats": 5})
    problem(r, 403, "not_admin")
    r = await api.call("PUT", "acme", "/agents/carol")
    problem(r, 403, "not_admin")
    assert (await api.assign("bob")).status_code == 201
    r = await api.call("DELETE", "acme", "/agents/bob")
    problem(r, 403, "not_admin")
    summary = await api.summary()
    assert summary["assigned"] == 1
    check = (await api.call("GET", "acme", "/agents/carol")).json()
    assert check == {"user_id": "carol", "agent": False, "active": False}


async def test_service_may_read_any_existing_account(api: Api) -> None:
    assert (await api.start_trial("globex", user="gina")).status_code == 201
    assert (await api.assign("gina", "globex", user="gina")).status_code == 201
    for account in ("acme", "globex"):
        for path in ("", "/agents", "/agents/alice" if account == "acme" else "/agents/gina"):
            r = await api.call("GET", account, path)
            assert r.status_code == 200, (account, path, r.text)
        for path in ("/invoices", "/events"):
            r = await api.call("GET", account, path)
            assert r.status_code == 200, (account, path, r.text)
            assert "data" in r.json()
    assert (await api.call("GET", "globex")).json()["status"] == "trialing"
    agents = (await api.call("GET", "globex", "/agents")).json()["data"]
    assert [a["user_id"] for a in agents] == ["gina"]
    events = (await api.call("GET", "globex", "/events")).json()["data"]
    assert {e["type"] for e in events} == {"trial.started", "agent.assigned"}


async def test_service_gets_not_found_for_unknown_account(api: Api) -> None:
    for path in ("", "/agents", "/agents/alice", "/invoices", "/events"):
        r = await api.call("GET", "nope", path)
        problem(r, 404, "not_found")


async def test_plain_user_cannot_read_ledger_or_audit_log(api: Api) -> None:
    for path in ("/invoices", "/events"):
        problem(await api.call("GET", "acme", path, user="carol"), 403, "not_admin")
        assert (await api.call("GET", "acme", path, user="bob")).status_code == 200


# --- the `seats token` CLI -------------------------------------------------------------------


async def test_cli_token_mints_a_working_user_token(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEATS_JWT_SECRET", SECRET)
    monkeypatch.delenv("SEATS_JWT_PUBLIC_KEY", raising=False)
    seats_config.get_settings.cache_clear()
    try:
        seats_cli.main(["token", "--account", "acme", "--user", "alice"])
    finally:
        seats_config.get_settings.cache_clear()
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["account_id"] == "acme"
    assert "scope" not in claims
    r = await api.client.get(SUMMARY, headers=auth(token))
    assert r.status_code == 200, r.text
    r = await api.client.post(f"{SUMMARY}/trial", headers=auth(token))
    assert r.status_code == 201, r.text


async def test_cli_internal_token_is_a_service_token(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEATS_JWT_SECRET", SECRET)
    monkeypatch.delenv("SEATS_JWT_PUBLIC_KEY", raising=False)
    seats_config.get_settings.cache_clear()
    try:
        seats_cli.main(["token", "--internal", "--subject", "crm"])
    finally:
        seats_config.get_settings.cache_clear()
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "crm"
    assert "account_id" not in claims
    r = await api.client.post("/internal/v1/billing/run", headers=auth(token))
    assert r.status_code == 200, r.text


async def test_cli_token_needs_account_and_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATS_JWT_SECRET", SECRET)
    seats_config.get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exc:
            seats_cli.main(["token", "--account", "acme"])
    finally:
        seats_config.get_settings.cache_clear()
    assert exc.value.code not in (0, None)
