"""Hostile input: whatever arrives, the answer is a 4xx problem+json (never a 500), nothing
changes when the request is refused, and no input reaches another account's data.

Basic token failures live in tests/test_auth.py and the error shapes (malformed JSON, 413 with
and without Content-Length, seats out of bounds on the three seat endpoints) in
tests/test_errors.py; this file adds what those do not cover.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from itertools import product
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from tests.conftest import NOW, SECRET, Api, auth, problem, seed_directory
from tests.security.conftest import SnapshotFn, World, changed_tables

V1 = "/v1/accounts/acme/conversations"
KB = 1024
MB = 1024 * KB
MAX_BODY = 64 * KB

Json = dict[str, Any]


@pytest.fixture
async def api(world_of: World) -> Api:
    """The ``api`` fixture's world (tests/conftest.py), restored from rows after its first use."""

    async def build(api: Api) -> dict[str, str]:
        await seed_directory(api)
        return {}

    api, _ = await world_of("directory", build)
    return api


@pytest.fixture
async def world(api: Api) -> str:
    """acme active with 5 seats, carol its agent and dave a plain user; globex has no plan.

    Returns acme's (paid) purchase invoice id. A hostile request that slipped through would
    have something to change.
    """
    assert (await api.put_user("acme", "dave")).status_code == 201
    r = await api.buy(5)
    assert r.status_code == 201, r.text
    assert (await api.assign("carol")).status_code == 201
    invoice_id: str = r.json()["invoice"]["id"]
    return invoice_id


def refused(r: httpx.Response, *allowed: tuple[int, str]) -> Json:
    """A 4xx problem+json whose (status, code) is one of ``allowed``."""
    where = f"{r.request.method} {r.request.url.raw_path[:200]!r}"
    assert 400 <= r.status_code < 500, (where, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/problem+json"), (where, r.headers)
    body: Json = r.json()
    assert (r.status_code, body["code"]) in allowed, (where, body)
    return problem(r, r.status_code, body["code"])


async def unchanged(snapshot: SnapshotFn, before: Any, what: str) -> None:
    after = await snapshot()
    assert changed_tables(before, after) == [], f"{what} changed rows"


async def asgi(
    app: Any,
    method: str,
    raw_path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One request straight through ASGI: for what httpx refuses to send (a 1 MB URL, a
    newline in a header value), which an in-process caller or a lax proxy could still pass."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "server": ("test", 80),
        "client": ("127.0.0.1", 5000),
    }
    sent = False
    status = 0
    response_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                response_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, response_headers, b"".join(chunks)


def raw_problem(status: int, headers: dict[str, str], body: bytes) -> Json:
    assert 400 <= status < 500, (status, body[:300])
    assert headers["content-type"].startswith("application/problem+json"), headers
    parsed: Json = json.loads(body)
    assert parsed["status"] == status
    return parsed


# --- hostile ids in the path ----------------------------------------------------------------

# (method, path with {id}, caller, body): every kind of path id, as the caller allowed to use it.
PATH_TEMPLATES = [
    ("GET", "/v1/accounts/{id}/conversations", "service", None),
    ("POST", "/v1/accounts/{id}/conversations/removals", "alice", {"seats": 0}),
    ("GET", V1 + "/agents/{id}", "alice", None),
    ("PUT", V1 + "/agents/{id}", "alice", None),
    ("DELETE", V1 + "/agents/{id}", "alice", None),
    ("GET", V1 + "/invoices/{id}", "alice", None),
    ("POST", V1 + "/invoices/{id}/pay", "alice", None),
    (
        "PUT",
        "/internal/v1/accounts/{id}",
        "service",
        {
            "name": "X",
            "billing_cycle": "monthly",
            "billing_anchor": "2026-11-01",
            "payment_method": "pm_card_visa",
        },
    ),
    (
        "PUT",
        "/internal/v1/accounts/acme/users/{id}",
        "service",
        {"email": "x@acme.test", "name": "X", "role": "primary_admin"},
    ),
    ("DELETE", "/internal/v1/accounts/acme/users/{id}", "service", None),
]

HOSTILE_IDS = {
    "nul": "ca\x00rol",
    "10kb": "a" * (10 * KB),
    "sql-injection": "acme' OR '1'='1",
    "sql-comment": "carol'--",
    "emoji": "car🚀ol",
    "trailing-newline": "carol\n",
    "dot-dot": "..",
    "encoded-slash": "acme/../globex",
    "percent-encoded-again": "%61cme",
    "space": "carol ",
}


def headers_for(api: Api, caller: str) -> dict[str, str]:
    return api.as_service() if caller == "service" else api.as_user("acme", caller)


def allowed_caller(api: Api, path: str) -> dict[str, str]:
    """Who may call ``path``: acme's primary admin under /v1, a service under /internal."""
    return api.as_user("acme", "alice") if path.startswith("/v1") else api.as_service()


async def test_hostile_path_ids_are_refused_and_change_nothing(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    before = await snapshot()
    for (method, template, caller, body), hostile in product(PATH_TEMPLATES, HOSTILE_IDS.values()):
        # percent-encoded, dots included (httpx would resolve a bare ".." segment itself)
        path = template.replace("{id}", quote(hostile, safe="").replace(".", "%2E"))
        r = await api.client.request(method, path, json=body, headers=headers_for(api, caller))
        # 422 when the id breaks the id pattern; 404 when the decoded path no longer matches
        # a route at all (an encoded slash); 405 when it matches another route's shape. An
        # invoice id that is not one of ours is as unknown as a missing one: 404.
        refused(
            r,
            (422, "validation_error"),
            (404, "not_found"),
            (405, "method_not_allowed"),
            *([(404, "invoice_not_found")] if "/invoices/" in template else []),
        )
        for other in ("globex", "gina"):
            assert other not in r.text, (method, path, r.text)
    await unchanged(snapshot, before, "a hostile path id")


async def test_megabyte_path_id_is_refused(api: Api, app: Any, snapshot: SnapshotFn) -> None:
    before = await snapshot()
    huge = b"a" * MB
    service = [(b"authorization", api.as_service()["Authorization"].encode())]
    for method, raw_path in (
        ("GET", b"/v1/accounts/" + huge + b"/conversations"),
        ("DELETE", b"/v1/accounts/acme/conversations/agents/" + huge),
        ("DELETE", b"/internal/v1/accounts/acme/users/" + huge),
    ):
        status, headers, body = await asgi(app, method, raw_path, service)
        assert raw_problem(status, headers, body)["code"] in ("validation_error", "not_found")
        assert len(body) < 10 * KB  # the id is not echoed back
    await unchanged(snapshot, before, "a 1 MB path id")


async def test_invalid_utf8_in_the_path_is_refused(api: Api, app: Any) -> None:
    service = [(b"authorization", api.as_service()["Authorization"].encode())]
    for raw_path in (b"/v1/accounts/ac%FFme/conversations", b"/v1/accounts/%C0%AE/conversations"):
        status, headers, body = await asgi(app, "GET", raw_path, service)
        assert raw_problem(status, headers, body)["code"] == "validation_error"


async def test_sql_injection_in_a_valid_looking_id_finds_nothing(api: Api, world: str) -> None:
    """Ids that pass the pattern are bound parameters: SQL-ish ones are just unknown ids."""
    for hostile in ("acme--", "1-OR-1", "acme_OR_1_1", "globex--"):
        r = await api.call("GET", hostile)
        problem(r, 404, "not_found")
        r = await api.call("GET", "acme", f"/agents/{hostile}")
        problem(r, 404, "user_not_found")


# --- hostile header values ------------------------------------------------------------------

IDEMPOTENT_POSTS = [
    ("/purchases", {"seats": 9}),
    ("/removals", {"seats": 4}),
    ("/quotes", {"seats": 9}),
    ("/trial", None),
    ("/invoices/{invoice}/pay", None),
]

BAD_KEYS = {
    "nul": b"abc\x00def",
    "control": b"abc\x01def",
    "del": b"abc\x7fdef",
    "10kb": b"k" * (10 * KB),
    "1mb": b"k" * MB,
    "latin1-byte": b"cl\xe9",
}


async def test_hostile_idempotency_key_is_refused(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    before = await snapshot()
    for (path, body), key in product(IDEMPOTENT_POSTS, BAD_KEYS.values()):
        r = await api.client.post(
            V1 + path.format(invoice=world),
            json=body,
            headers=[  # type: ignore[arg-type]
                ("Authorization", api.as_user("acme", "alice")["Authorization"]),
                ("Idempotency-Key", key),
            ],
        )
        refused(r, (400, "invalid_idempotency_key"))
        assert len(r.content) < 10 * KB  # the key is not echoed back
    await unchanged(snapshot, before, "a hostile Idempotency-Key")


async def test_idempotency_key_with_a_trailing_newline_is_refused(
    api: Api, app: Any, world: str, snapshot: SnapshotFn
) -> None:
    """Only visible ASCII, up to the end: a regex ``$`` would let a final newline through."""
    before = await snapshot()
    headers = [
        (b"authorization", api.as_user("acme", "alice")["Authorization"].encode()),
        (b"content-type", b"application/json"),
        (b"idempotency-key", b"key\n"),
    ]
    status, response_headers, body = await asgi(
        app, "POST", V1.encode() + b"/purchases", headers, b'{"seats": 9}'
    )
    assert raw_problem(status, response_headers, body)["code"] == "invalid_idempotency_key"
    await unchanged(snapshot, before, "a key with a newline")


async def test_hostile_authorization_header_is_unauthenticated(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    before = await snapshot()
    values = (b"Bearer abc\x00def", b"Bearer " + b"a" * MB, b"Bearer \xff\xfe", b"\x00" * 100)
    for (method, path), value in product((("GET", V1), ("POST", V1 + "/removals")), values):
        r = await api.client.request(
            method,
            path,
            json={"seats": 0},
            headers=[("Authorization", value), ("Idempotency-Key", "k")],  # type: ignore[arg-type]
        )
        refused(r, (401, "unauthenticated"))
    await unchanged(snapshot, before, "a hostile Authorization header")


# --- hostile JSON values --------------------------------------------------------------------

SEAT_PATHS = ["/quotes", "/purchases", "/removals"]


def raw_seats(value: str) -> bytes:
    return b'{"seats": ' + value.encode() + b"}"


# test_errors covers -1, -(2**63), 1_000_000_001, 2**63, 10**30, 1.5, 5.0001, 1e9, strings,
# booleans, null, [5] and {"n": 5}: these are the ones it does not.
HOSTILE_SEATS = {
    "2**31": str(2**31),
    "2**31-1": str(2**31 - 1),
    "2**64": str(2**64),
    "-(2**64)": str(-(2**64)),
    "4000-digits": "9" * 4000,
    "5000-digits": "9" * 5000,  # past Python's int parsing limit: the body cannot be read
    "1.0": "1.0",
    "1e3": "1e3",
    "-0.0": "-0.0",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "nested": '{"seats": 5}',
    "deep-array": "[" * 50 + "5" + "]" * 50,
    "empty-string": '""',
    "hex": '"0x10"',
}


async def test_hostile_seats_are_validation_errors(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    before = await snapshot()
    for path, seats in product(SEAT_PATHS, HOSTILE_SEATS.values()):
        r = await api.client.post(
            V1 + path,
            content=raw_seats(seats),
            headers={
                **api.as_user("acme", "alice"),
                "Content-Type": "application/json",
                "Idempotency-Key": "hostile-seats",
            },
        )
        body = refused(r, (422, "validation_error"))
        assert [e["loc"][0] for e in body["errors"]] == ["body"], (path, seats, body)
    await unchanged(snapshot, before, "hostile seats")


# Wrong JSON types where strings (and dates, enums) belong, endpoint by endpoint.
ACCOUNT = {
    "name": "Acme",
    "billing_cycle": "monthly",
    "billing_anchor": "2026-11-01",
    "payment_method": "pm_card_visa",
}
USER = {"email": "alice@acme.test", "name": "Alice", "role": "primary_admin"}
WRONG_TYPES: list[Any] = [5, 1.5, True, None, ["x"], {"x": "y"}]


def typed_cases() -> list[tuple[str, str, Json, str]]:
    cases = []
    for field in ACCOUNT:
        for value in WRONG_TYPES:
            cases.append(("PUT", "/internal/v1/accounts/acme", {**ACCOUNT, field: value}, field))
    for field in USER:
        for value in WRONG_TYPES:
            path = "/internal/v1/accounts/acme/users/alice"
            cases.append(("PUT", path, {**USER, field: value}, field))
    for value in WRONG_TYPES:
        if not isinstance(value, int | float) or isinstance(value, bool):
            # (a number is a Unix time to pydantic: a valid "now")
            cases.append(("PUT", "/internal/v1/test-clock", {"now": value}, "now"))
        if value is not None:  # quote_id may be null
            cases.append(("POST", V1 + "/purchases", {"seats": 9, "quote_id": value}, "quote_id"))
    return cases


async def test_wrong_json_types_are_validation_errors(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    before = await snapshot()
    for method, path, body, field in typed_cases():
        caller = allowed_caller(api, path)
        r = await api.client.request(
            method, path, json=body, headers={**caller, "Idempotency-Key": "typed"}
        )
        problem_body = refused(r, (422, "validation_error"))
        assert ["body", field] in [e["loc"][:2] for e in problem_body["errors"]], (
            path,
            body,
            problem_body,
        )
    await unchanged(snapshot, before, "wrongly typed fields")


# --- mass assignment: bodies cannot set what an endpoint does not offer ---------------------

CAROL = "/internal/v1/accounts/acme/users/carol"
MASS_ASSIGNMENT = [
    ("POST", V1 + "/quotes", {"seats": 9, "status": "active"}, "status"),
    ("POST", V1 + "/quotes", {"seats": 9, "unit_price": 1}, "unit_price"),
    ("POST", V1 + "/purchases", {"seats": 9, "status": "active"}, "status"),
    ("POST", V1 + "/purchases", {"seats": 9, "due_now": 0}, "due_now"),
    ("POST", V1 + "/purchases", {"seats": 9, "account_id": "globex"}, "account_id"),
    ("POST", V1 + "/removals", {"seats": 4, "assigned": 0}, "assigned"),
    ("PUT", "/internal/v1/accounts/acme", {**ACCOUNT, "id": "globex"}, "id"),
    ("PUT", "/internal/v1/accounts/acme", {**ACCOUNT, "created_at": "2000-01-01"}, "created_at"),
    ("PUT", "/internal/v1/accounts/acme", {**ACCOUNT, "seats": 1000}, "seats"),
    ("PUT", CAROL, {**USER, "account_id": "globex"}, "account_id"),
    ("PUT", CAROL, {**USER, "id": "gina"}, "id"),
    ("PUT", "/internal/v1/test-clock", {"now": "2026-11-22T00:00:00Z", "id": 2}, "id"),
]  # fmt: skip


async def test_unknown_fields_are_refused_not_assigned(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    before = await snapshot()
    for method, path, body, field in MASS_ASSIGNMENT:
        caller = allowed_caller(api, path)
        r = await api.client.request(
            method, path, json=body, headers={**caller, "Idempotency-Key": "mass"}
        )
        problem_body = refused(r, (422, "validation_error"))
        assert ["body", field] in [e["loc"] for e in problem_body["errors"]], problem_body
    await unchanged(snapshot, before, "a body with an unknown field")


async def test_bodies_of_bodiless_endpoints_are_ignored(api: Api, world: str) -> None:
    """The trial, assigning an agent and paying take no body: one sent sets nothing."""
    r = await api.call(
        "POST",
        "globex",
        "/trial",
        user="gina",
        json={"seats": 1000, "status": "active", "ends_at": "2099-01-01T00:00:00Z"},
    )
    assert r.status_code == 201, r.text
    trial = r.json()
    assert (trial["status"], trial["seats"]) == ("trialing", 20)
    assert trial["trial"]["ends_at"] == "2026-12-05T12:00:00Z"  # 14 days from the test clock
    r = await api.call(
        "PUT",
        "acme",
        "/agents/dave",
        user="bob",
        json={"assigned_by": "user:gina", "assigned_at": "2000-01-01T00:00:00Z"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["assigned_by"] == "user:bob"
    assert r.json()["assigned_at"] == NOW.isoformat().replace("+00:00", "Z")


# --- bodies that are not (good) JSON --------------------------------------------------------

BODY_ENDPOINTS = [
    ("POST", V1 + "/quotes", {"seats": 9}),
    ("POST", V1 + "/purchases", {"seats": 9}),
    ("POST", V1 + "/removals", {"seats": 4}),
    ("PUT", "/internal/v1/accounts/acme", ACCOUNT),
    ("PUT", "/internal/v1/accounts/acme/users/zoe", {**USER, "role": "user"}),
    ("PUT", "/internal/v1/test-clock", {"now": "2026-11-22T00:00:00Z"}),
]

BAD_BODIES: dict[str, tuple[str | None, bytes | None]] = {
    # name: (Content-Type, body or None for the endpoint's valid JSON)
    "json-as-text-plain": ("text/plain", None),
    "json-as-xml": ("application/xml", None),
    "json-as-multipart": ("multipart/form-data; boundary=x", None),
    "json-without-content-type": (None, None),
    "not-json": ("application/json", b"seats=9"),
    "invalid-utf8-in-a-string": ("application/json", b'{"seats": 9, "name": "\xff"}'),
    "invalid-utf8-after-json": ("application/json", b'{"seats": 9}\xff'),
    "lone-surrogate": ("application/json", b'{"seats": 9, "name": "\\ud800"}'),
    "nested-10000": ("application/json", b'{"seats": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
    "bare-nested-10000": ("application/json", b"[" * 10_000 + b"]" * 10_000),
    "nul-byte": ("application/json", b'{"seats": 9\x00}'),
}


async def test_bad_bodies_are_4xx_problems_and_change_nothing(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    before = await snapshot()
    for (method, path, valid), (kind, (content_type, raw)) in product(
        BODY_ENDPOINTS, BAD_BODIES.items()
    ):
        caller = allowed_caller(api, path)
        headers = {**caller, "Idempotency-Key": f"bad-{kind}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        content = json.dumps(valid).encode() if raw is None else raw
        r = await api.client.request(method, path, content=content, headers=headers)
        # 422 (SPEC §4: bad bodies) or 415; never a 500, never a success.
        try:
            refused(r, (422, "validation_error"), (415, "unsupported_media_type"))
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} with {kind}: {exc}") from exc
    await unchanged(snapshot, before, "a bad body")


async def test_oversized_bodies_are_413_everywhere(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    """test_errors covers /quotes and /purchases; every other endpoint refuses them too."""
    before = await snapshot()
    endpoints = (
        ("POST", V1 + "/removals"),
        ("POST", V1 + "/trial"),
        ("PUT", V1 + "/agents/dave"),
        ("POST", V1 + f"/invoices/{world}/pay"),
        ("PUT", "/internal/v1/accounts/acme"),
        ("PUT", "/internal/v1/accounts/acme/users/zoe"),
        ("PUT", "/internal/v1/test-clock"),
        ("POST", "/internal/v1/billing/run"),
    )
    for (method, path), size in product(endpoints, (65 * KB, MB)):
        pad = "x" * size
        caller = allowed_caller(api, path)
        r = await api.client.request(
            method, path, json={**ACCOUNT, "name": pad}, headers={**caller, "Idempotency-Key": "k"}
        )
        refused(r, (413, "payload_too_large"))
        assert len(r.content) < 10 * KB
    await unchanged(snapshot, before, "an oversized body")


async def test_deeply_nested_body_on_a_bodiless_idempotent_post(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    """The Idempotency-Key fingerprint reads the body even where the endpoint does not: a
    body nested too deep to parse is fingerprinted as text, not a crash."""
    deep = b"[" * 10_000 + b"]" * 10_000
    headers = {
        **api.as_user("globex", "gina"),
        "Content-Type": "application/json",
        "Idempotency-Key": "deep",
    }
    r = await api.client.post(
        "/v1/accounts/globex/conversations/trial", content=deep, headers=headers
    )
    assert r.status_code == 201, r.text
    again = await api.client.post(
        "/v1/accounts/globex/conversations/trial", content=deep, headers=headers
    )
    assert again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == r.json()
    # refused by role before the key is even claimed: nothing at all is written
    before = await snapshot()
    r = await api.client.post(
        V1 + "/trial",
        content=deep,
        headers={**api.as_user("acme", "bob"), "Idempotency-Key": "deep"},
    )
    refused(r, (403, "not_primary_admin"))
    await unchanged(snapshot, before, "a deeply nested body")


async def test_duplicate_json_keys_mean_what_the_key_fingerprint_means(
    api: Api, world: str
) -> None:
    """With {"seats": 6, "seats": 7} the handler and the idempotency fingerprint must read the
    same value (the last one), or a replay could answer for a request that differs."""
    headers = {
        **api.as_user("acme", "alice"),
        "Content-Type": "application/json",
        "Idempotency-Key": "dup",
    }
    r = await api.client.post(
        V1 + "/purchases", content=b'{"seats": 6, "seats": 7}', headers=headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["summary"]["seats"] == 7
    same = await api.client.post(V1 + "/purchases", content=b'{"seats": 7}', headers=headers)
    assert same.status_code == 201
    assert same.headers.get("idempotent-replayed") == "true"
    assert same.json() == r.json()
    other = await api.client.post(
        V1 + "/purchases", content=b'{"seats": 7, "seats": 6}', headers=headers
    )
    problem(other, 422, "idempotency_key_reused")
    assert (await api.summary())["seats"] == 7


# --- text fields: Unicode accepted, control characters refused ------------------------------


@pytest.mark.parametrize(
    "name",
    ["Zoë Ångström 李小龍 🚀👩🏽‍💻", "Robert'); DROP TABLE account;--", "x" * 200],
    ids=["unicode", "sql", "200-chars"],
)
async def test_unicode_names_are_stored_exactly(api: Api, sql: Any, name: str) -> None:
    r = await api.client.put(
        "/internal/v1/accounts/acme/users/zoe",
        json={"email": "zoë@例え.jp", "name": name, "role": "user"},
        headers=api.as_service(),
    )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name
    r = await api.put_account("acme", name=name)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name
    [(stored_user,)] = await sql("SELECT name FROM account_user WHERE id = 'zoe'")
    [(stored_account,)] = await sql("SELECT name FROM account WHERE id = 'acme'")
    assert stored_user == stored_account == name
    # and nothing else moved: the SQL-looking name is a name
    assert [row[0] for row in await sql("SELECT id FROM account ORDER BY id")] == ["acme", "globex"]


async def test_control_characters_in_text_fields_are_refused(
    api: Api, snapshot: SnapshotFn
) -> None:
    """PostgreSQL cannot store NUL in text; both databases refuse the same inputs (422)."""
    before = await snapshot()
    carol, acme = "/internal/v1/accounts/acme/users/carol", "/internal/v1/accounts/acme"
    for bad in ("Zo\x00e", "Zoe\nInjected: header", "Zo\re", "Zoe\x1b[31m", "Zoe\x7f", "\x00"):
        for path, body, field in (
            (carol, {**USER, "role": "user", "name": bad}, "name"),
            (carol, {**USER, "email": f"{bad}@x.test"}, "email"),
            (acme, {**ACCOUNT, "name": bad}, "name"),
            (acme, {**ACCOUNT, "payment_method": f"pm_{bad}"}, "payment_method"),
        ):
            r = await api.client.put(path, json=body, headers=api.as_service())
            problem_body = refused(r, (422, "validation_error"))
            assert [e["loc"] for e in problem_body["errors"]] == [["body", field]], problem_body
    await unchanged(snapshot, before, "a control character in a text field")


# --- query strings: cursors and limits ------------------------------------------------------


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


FORGED_CURSORS = {
    "naive-time": cursor(["2026-11-21T12:00:00", "evt_x"]),
    "nul-in-key": cursor(["2026-11-21T12:00:00+00:00", "evt\x00x"]),
    "surrogate-in-key": cursor(["2026-11-21T12:00:00+00:00", "evt\ud800"]),
    "newline-in-key": cursor(["2026-11-21T12:00:00+00:00", "evt_x\n"]),
    "sql-in-key": cursor(["2026-11-21T12:00:00+00:00", "x' OR '1'='1"]),
    "number-key": cursor(["2026-11-21T12:00:00+00:00", 5]),
    "overflowing-time": cursor(["9999-12-31T23:59:59-12:00", "evt_x"]),
    "not-a-pair": cursor({"at": "2026-11-21T12:00:00+00:00"}),
    "deep": cursor([[[[[[[[["x"]]]]]]]]]),
    "not-base64": "%%%",
    "sql": "' OR 1=1 --",
    "nul": "\x00",
}


async def test_forged_cursors_are_validation_errors(api: Api, world: str) -> None:
    for path, forged in product(("/agents", "/invoices", "/events"), FORGED_CURSORS.values()):
        r = await api.client.get(
            V1 + path, params={"cursor": forged}, headers=api.as_user("acme", "alice")
        )
        body = refused(r, (422, "validation_error"))
        assert [e["loc"] for e in body["errors"]] == [["query", "cursor"]], (forged, body)


async def test_a_cursor_is_a_position_not_a_key_to_another_account(api: Api, world: str) -> None:
    """globex's cursor used on acme's list pages through acme's rows only."""
    assert (await api.start_trial("globex", user="gina")).status_code == 201
    assert (await api.assign("gina", "globex", user="gina")).status_code == 201
    page = (await api.call("GET", "globex", "/events?limit=1")).json()
    assert page["next_cursor"] is not None
    acme_ids = {
        e["id"] for e in (await api.call("GET", "acme", "/events?limit=100")).json()["data"]
    }
    globex_ids = {
        e["id"] for e in (await api.call("GET", "globex", "/events?limit=100")).json()["data"]
    }
    r = await api.client.get(
        V1 + "/events",
        params={"cursor": page["next_cursor"], "limit": 100},
        headers=api.as_user("acme", "alice"),
    )
    assert r.status_code == 200, r.text
    seen = {e["id"] for e in r.json()["data"]}
    assert seen <= acme_ids
    assert not seen & globex_ids


async def test_hostile_limits_are_validation_errors(api: Api) -> None:
    for limit in ("1e3", str(2**64), "-0", "1%00", "NaN", "1;DROP TABLE event"):
        r = await api.client.get(f"{V1}/events?limit={limit}", headers=api.as_user("acme", "alice"))
        body = refused(r, (422, "validation_error"))
        assert [e["loc"] for e in body["errors"]] == [["query", "limit"]], (limit, body)


# --- the test clock (service only, test mode only) ------------------------------------------


async def test_test_clock_outside_its_range_is_refused(api: Api, snapshot: SnapshotFn) -> None:
    """Times where "now + 14 days" or "now - 24 hours" leave the calendar crashed every
    endpoint (500); the clock refuses them instead."""
    before = await snapshot()
    for now in (
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "9000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ):
        r = await api.client.put(
            "/internal/v1/test-clock", json={"now": now}, headers=api.as_service()
        )
        body = refused(r, (422, "validation_error"))
        assert [e["loc"] for e in body["errors"]] == [["body", "now"]]
    await unchanged(snapshot, before, "an out-of-range test clock")


@pytest.mark.parametrize("now", ["1970-01-01T00:00:00Z", "8999-12-31T23:59:59Z"])
async def test_test_clock_at_its_bounds_keeps_every_endpoint_working(api: Api, now: str) -> None:
    r = await api.client.put("/internal/v1/test-clock", json={"now": now}, headers=api.as_service())
    assert r.status_code == 200, r.text
    assert (await api.start_trial()).status_code == 201
    r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 30})
    assert r.status_code == 201, r.text
    assert (await api.buy(30)).status_code == 201
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.status_code == 200, r.text
    assert (await api.put_account("initech")).status_code == 201


# --- tokens: what tests/test_auth.py does not cover -----------------------------------------


def signed(claims: Any) -> str:
    """An HS256 token with the test secret, over exactly these claims (any JSON, even NaN)."""

    def segment(value: Any) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing_input = segment({"alg": "HS256", "typ": "JWT"}) + b"." + segment(claims)
    signature = hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def in_an_hour() -> int:
    return int(time.time()) + 3600


async def test_signed_token_claiming_another_account_gets_nothing(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    """alice's token, correctly signed but saying account globex: acme is not its account
    (404) and in globex alice is nobody (403 unknown_user)."""
    token = auth(signed({"sub": "alice", "account_id": "globex", "exp": in_an_hour()}))
    before = await snapshot()
    problem(await api.client.get(V1, headers=token), 404, "not_found")
    problem(await api.client.post(V1 + "/trial", headers=token), 404, "not_found")
    globex = "/v1/accounts/globex/conversations"
    problem(await api.client.get(globex, headers=token), 403, "unknown_user")
    problem(await api.client.post(globex + "/trial", headers=token), 403, "unknown_user")
    r = await api.client.post(
        globex + "/purchases", json={"seats": 5}, headers={**token, "Idempotency-Key": "x"}
    )
    problem(r, 403, "unknown_user")
    await unchanged(snapshot, before, "a token claiming another account")


BAD_CLAIMS = {
    "exp-string": {"exp": "9999999999"},
    "exp-word": {"exp": "tomorrow"},
    "exp-true": {"exp": True},
    "exp-list": {"exp": [9999999999]},
    "exp-object": {"exp": {"at": 9999999999}},
    "exp-nan": {"exp": float("nan")},
    "exp-infinity": {"exp": float("inf")},
    "nbf-future": {"nbf": 9999999999},
    "nbf-string": {"nbf": "x"},
    "iat-string": {"iat": "x"},
    "sub-nul": {"sub": "ali\x00ce"},
    "sub-newline": {"sub": "alice\n"},
    "account-newline": {"account_id": "acme\n"},
    "sub-emoji": {"sub": "ali🚀ce"},
}


async def test_token_with_hostile_claims_is_unauthenticated(
    api: Api, world: str, snapshot: SnapshotFn
) -> None:
    before = await snapshot()
    for name, bad in BAD_CLAIMS.items():
        token = auth(signed({"sub": "alice", "account_id": "acme", "exp": in_an_hour(), **bad}))
        for r in (
            await api.client.get(V1, headers=token),
            await api.client.post(V1 + "/removals", json={"seats": 4}, headers=token),
        ):
            assert r.status_code == 401, (name, r.text)
            problem(r, 401, "unauthenticated")
    await unchanged(snapshot, before, "a token with hostile claims")


async def test_token_with_an_enormous_exp_is_valid_not_a_crash(api: Api) -> None:
    """An exp too large for a float (10**400) is still a far future, signed by the issuer."""
    token = auth(signed({"sub": "alice", "account_id": "acme", "exp": 10**400}))
    r = await api.client.get(V1, headers=token)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "none"


async def test_token_with_a_huge_payload_is_not_a_crash(api: Api, snapshot: SnapshotFn) -> None:
    """A 1 MB claim: in process it is just a valid token (a real server caps header sizes)."""
    token = auth(
        signed({"sub": "carol", "account_id": "acme", "exp": in_an_hour(), "pad": "x" * MB})
    )
    r = await api.client.get(V1, headers=token)
    assert r.status_code == 200, r.text
    # it carries carol's role and no more: R1 still holds
    before = await snapshot()
    problem(await api.client.post(V1 + "/trial", headers=token), 403, "not_primary_admin")
    await unchanged(snapshot, before, "a huge token")
