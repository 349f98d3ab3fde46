"""SPEC §5: Idempotency-Key on the POSTs that change state — replays, misuse, scope, locks and
retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.errors import IdempotencyKeyInUse
from app.idempotency import make_request
from app.main import create_app
from tests.conftest import Api, make_settings, problem
from tests.payments_server import PaymentsServer

Sql = Callable[..., Any]
PURCHASES = "/v1/accounts/acme/conversations/purchases"


def replayed(r: httpx.Response) -> bool:
    return bool(r.headers.get("Idempotent-Replayed") == "true")


async def count(sql: Sql, table: str) -> int:
    [(n,)] = await sql(f"SELECT COUNT(*) FROM {table}")
    return int(n)


async def events_of(api: Api, kind: str) -> list[dict[str, Any]]:
    r = await api.call("GET", "acme", "/events?limit=100")
    return [e for e in r.json()["data"] if e["type"] == kind]


# --- replays -------------------------------------------------------------------------------


async def test_purchase_replays_its_response(api: Api, sql: Sql) -> None:
    first = await api.buy(5, key="buy-5")
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(3):
        again = await api.buy(5, key="buy-5")
        assert again.status_code == 201
        assert again.json() == first.json()
        assert replayed(again)
    assert await count(sql, "invoice") == 1
    assert len(await events_of(api, "seats.purchased")) == 1
    assert (await api.summary())["seats"] == 5


async def test_removal_replays_the_first_answer_not_a_new_one(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    headers = {"Idempotency-Key": "remove-to-5"}
    first = await api.call(
        "POST", "acme", "/removals", user="alice", json={"seats": 5}, headers=headers
    )
    assert first.status_code == 200, first.text
    assert (await api.buy(6)).status_code == 201
    again = await api.call(
        "POST", "acme", "/removals", user="alice", json={"seats": 5}, headers=headers
    )
    assert (again.status_code, again.json()) == (200, first.json())
    assert replayed(again)
    assert again.json()["seats"] == 5
    assert (await api.summary())["seats"] == 6  # the replay removed nothing
    assert len(await events_of(api, "seats.removed")) == 1


async def test_quote_replays_the_same_quote(api: Api, sql: Sql) -> None:
    first = await api.call("POST", "acme", "/quotes", user="bob", json={"seats": 5}, key="q")
    again = await api.call("POST", "acme", "/quotes", user="bob", json={"seats": 5}, key="q")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert replayed(again) and not replayed(first)
    assert await count(sql, "quote") == 1


async def test_trial_replays_instead_of_trial_already_used(api: Api) -> None:
    first = await api.call("POST", "acme", "/trial", user="alice", key="trial")
    again = await api.call("POST", "acme", "/trial", user="alice", key="trial")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and replayed(again)
    assert len(await events_of(api, "trial.started")) == 1
    problem(
        await api.call("POST", "acme", "/trial", user="alice", key="other"),
        409,
        "trial_already_used",
    )


async def test_stored_conflict_replays(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    for user_id in ("alice", "bob", "carol", "u0"):
        if user_id == "u0":
            await api.add_users(1)
        assert (await api.assign(user_id)).status_code == 201
    body = {"seats": 2}
    first = await api.call("POST", "acme", "/removals", user="alice", json=body, key="rm-2")
    assert problem(first, 409, "seats_assigned")["assigned"] == 4
    for user_id in ("bob", "carol", "u0"):
        assert (await api.unassign(user_id)).status_code == 204
    # The removal would succeed now, but this key already has its answer.
    again = await api.call("POST", "acme", "/removals", user="alice", json=body, key="rm-2")
    assert problem(again, 409, "seats_assigned")["assigned"] == 4
    assert again.json() == first.json() and replayed(again)
    assert (await api.summary())["seats"] == 10
    fresh = await api.call("POST", "acme", "/removals", user="alice", json=body, key="rm-2b")
    assert fresh.status_code == 200, fresh.text


async def test_declined_purchase_replays_without_charging_again(api: Api, sql: Sql) -> None:
    assert (await api.put_account("acme", payment_method="pm_decline_card")).status_code == 200
    first = await api.buy(5, key="declined")
    problem(first, 402, "payment_declined")
    assert (await api.put_account("acme", payment_method="pm_card_visa")).status_code == 200
    again = await api.buy(5, key="declined")
    assert again.json() == first.json() and replayed(again)
    assert await count(sql, "invoice") == 1
    assert (await api.summary())["status"] == "none"


# --- misuse --------------------------------------------------------------------------------


async def test_same_key_with_another_body_is_refused(api: Api, sql: Sql) -> None:
    assert (await api.buy(5, key="k")).status_code == 201
    problem(await api.buy(6, key="k"), 422, "idempotency_key_reused")
    assert await count(sql, "invoice") == 1
    assert (await api.summary())["seats"] == 5


async def test_same_key_on_another_path_is_refused(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    body = {"seats": 5}
    r = await api.call("POST", "acme", "/quotes", user="alice", json=body, key="k")
    assert r.status_code == 201
    r = await api.call("POST", "acme", "/removals", user="alice", json=body, key="k")
    problem(r, 422, "idempotency_key_reused")
    assert (await api.summary())["seats"] == 10


async def test_key_is_scoped_per_caller(api: Api, sql: Sql) -> None:
    a = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 5}, key="shared")
    b = await api.call("POST", "acme", "/quotes", user="bob", json={"seats": 7}, key="shared")
    assert (a.status_code, b.status_code) == (201, 201)
    assert not replayed(b)
    assert (a.json()["seats"], b.json()["seats"]) == (5, 7)
    assert await count(sql, "quote") == 2


async def test_key_is_scoped_per_account(api: Api, sql: Sql) -> None:
    # The same user id, primary admin of both accounts, with the same key and body.
    assert (await api.put_user("globex", "alice", "primary_admin")).status_code == 201
    acme = await api.buy(5, key="shared")
    globex = await api.buy(5, account_id="globex", key="shared")
    assert (acme.status_code, globex.status_code) == (201, 201), globex.text
    assert not replayed(globex)
    assert acme.json()["invoice"]["id"] != globex.json()["invoice"]["id"]
    assert globex.json()["summary"]["billing_cycle"] == "yearly"
    assert await count(sql, "invoice") == 2


async def test_purchase_needs_a_key(api: Api, sql: Sql) -> None:
    r = await api.call("POST", "acme", "/purchases", user="alice", json={"seats": 5})
    problem(r, 400, "idempotency_key_required")
    assert await count(sql, "invoice") == 0
    assert (await api.summary())["status"] == "none"


@pytest.mark.parametrize("path", ["/purchases", "/quotes"])
async def test_invalid_key_is_refused(api: Api, sql: Sql, path: str) -> None:
    # 256 characters, a space, non-ASCII bytes, a control character, nothing.
    for key in ("x" * 256, "has space", "clé".encode(), "tab\there", ""):
        headers: Any = {"Idempotency-Key": key}
        r = await api.call("POST", "acme", path, user="alice", json={"seats": 5}, headers=headers)
        problem(r, 400, "invalid_idempotency_key")
    assert await count(sql, "idempotency_key") == 0
    assert await count(sql, "invoice") == 0
    assert await count(sql, "quote") == 0


async def test_longest_valid_key(api: Api) -> None:
    key = "~" + "x" * 253 + "!"
    assert (await api.buy(5, key=key)).status_code == 201
    assert replayed(await api.buy(5, key=key))


# --- a request still running, and one whose process died -----------------------------------


def purchase_request(key: str, body: bytes) -> Any:
    return make_request(
        account_id="acme", caller="user:alice", key=key, method="POST", path=PURCHASES, body=body
    )


async def send(api: Api, key: str, body: bytes) -> httpx.Response:
    headers = {**api.as_user("acme", "alice"), "Idempotency-Key": key}
    headers["Content-Type"] = "application/json"
    return await api.client.post(PURCHASES, content=body, headers=headers)


async def test_fingerprint_is_computed_from_the_bytes_sent(api: Api, sql: Sql) -> None:
    body = b'{"seats": 5}'
    assert (await send(api, "probe", body)).status_code == 201
    [(stored,)] = await sql("SELECT fingerprint FROM idempotency_key WHERE key = 'probe'")
    assert stored == purchase_request("probe", body).fingerprint
    # The same JSON written differently is the same request.
    assert replayed(await send(api, "probe", b'{ "seats":5 }'))


async def test_key_in_use_while_the_first_request_runs(
    api: Api,
    sql: Sql,
) -> None:
    body = b'{"seats":5}'
    now = datetime.now(UTC)  # locks use wall-clock time, not the test clock
    await insert_running(sql, "busy", purchase_request("busy", body).fingerprint, now)
    problem(await send(api, "busy", body), 409, "idempotency_key_in_use")
    assert await count(sql, "invoice") == 0
    # A different body under a running key is still misuse, not "in use".
    problem(await send(api, "busy", b'{"seats":6}'), 422, "idempotency_key_reused")
    [(state,)] = await sql("SELECT state FROM idempotency_key WHERE key = 'busy'")
    assert state == "running"  # the refused retry did not release the first request's claim


async def test_abandoned_key_is_taken_over_after_the_lock_expires(
    api: Api,
    sql: Sql,
) -> None:
    body = b'{"seats":5}'
    lock = 60  # Settings.idempotency_lock_seconds
    stale = datetime.now(UTC) - timedelta(seconds=lock + 1)
    await insert_running(sql, "orphan", purchase_request("orphan", body).fingerprint, stale)
    r = await send(api, "orphan", body)
    assert r.status_code == 201, r.text
    assert not replayed(r)
    assert await count(sql, "invoice") == 1
    again = await send(api, "orphan", body)
    assert replayed(again) and again.json() == r.json()
    [(state,)] = await sql("SELECT state FROM idempotency_key WHERE key = 'orphan'")
    assert state == "done"


async def test_an_abandoned_key_is_taken_over_by_one_retry_only(api: Api, sql: Sql) -> None:
    # The claim reads the key without a lock; the takeover is a conditional UPDATE, so of
    # retries racing for the same abandoned key one runs, and the others see it running (or,
    # once it finished, replay it).
    body = b'{"seats":5}'
    stale = datetime.now(UTC) - timedelta(seconds=61)
    await insert_running(sql, "orphan", purchase_request("orphan", body).fingerprint, stale)
    replies = await asyncio.gather(*(send(api, "orphan", body) for _ in range(4)))
    ran = [r for r in replies if r.status_code == 201 and not replayed(r)]
    assert len(ran) == 1, [r.text for r in replies]
    for r in replies:
        if r is not ran[0]:
            assert replayed(r) or problem(r, 409, "idempotency_key_in_use"), r.text
    assert await count(sql, "invoice") == 1
    assert await count(sql, "charge_attempt") == 1


async def test_racing_takeovers_of_an_abandoned_key_let_one_through(app: Any, sql: Sql) -> None:
    # The store itself, without the HTTP stack in between, so the claims' reads line up.
    body = b'{"seats":5}'
    stale = datetime.now(UTC) - timedelta(seconds=61)
    req = purchase_request("orphan", body)
    await insert_running(sql, "orphan", req.fingerprint, stale)
    store = app.state.idempotency
    outcomes = await asyncio.gather(*(store.claim(req) for _ in range(4)), return_exceptions=True)
    assert outcomes.count(None) == 1, outcomes
    assert all(isinstance(o, IdempotencyKeyInUse) for o in outcomes if o is not None), outcomes


async def insert_running(sql: Sql, key: str, fingerprint: str, locked_at: datetime) -> None:
    await sql(
        "INSERT INTO idempotency_key (account_id, caller, key, fingerprint, state, locked_at, "
        "created_at) VALUES ('acme', 'user:alice', :key, :fp, 'running', :at, :at)",
        key=key,
        fp=fingerprint,
        at=locked_at,
    )


# --- retention -----------------------------------------------------------------------------


async def test_keys_older_than_24_hours_are_purged_by_the_billing_run(
    api: Api,
    sql: Sql,
) -> None:
    for key in ("old", "recent"):
        r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 5}, key=key)
        assert r.status_code == 201
    now = datetime.now(UTC)
    for key, age in (("old", timedelta(hours=24, minutes=1)), ("recent", timedelta(hours=23))):
        await sql(
            "UPDATE idempotency_key SET created_at = :at WHERE key = :key", at=now - age, key=key
        )
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.json()["idempotency_keys_purged"] == 1
    rows = await sql("SELECT key FROM idempotency_key")
    assert [k for (k,) in rows] == ["recent"]
    # The purged key is free again: another body is a new request, not a reuse.
    r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 6}, key="old")
    assert r.status_code == 201 and not replayed(r)
    r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 6}, key="recent")
    problem(r, 422, "idempotency_key_reused")


# --- against a real payments service -------------------------------------------------------


@pytest.fixture
async def http_api(api: Api, database_url: str) -> AsyncIterator[tuple[Api, PaymentsServer]]:
    """The same (seeded) database served by an app that charges a real HTTP payments service."""
    with PaymentsServer() as server:
        settings = make_settings(
            database_url,
            payments_gateway="http",
            payments_url=server.url,
            payments_read_timeout=0.3,
        )
        app = create_app(settings)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield Api(client), server
        finally:
            await app.state.gateway.aclose()
            await app.state.db.dispose()


async def test_replays_never_reach_the_gateway(http_api: tuple[Api, PaymentsServer]) -> None:
    api, server = http_api
    first = await api.buy(5, key="once")
    assert first.status_code == 201, first.text
    for _ in range(3):
        assert replayed(await api.buy(5, key="once"))
    invoice = first.json()["invoice"]
    assert len(server.charges) == 1
    assert len(server.charges_for(invoice["id"])) == 1  # the gateway key is the invoice id
    assert server.charges[0]["amount"] == invoice["total"] == 3167


async def test_unfinished_outcomes_are_not_stored(
    http_api: tuple[Api, PaymentsServer], sql: Sql
) -> None:
    api, server = http_api
    server.stop()  # refused connections: the outcome of the charge is unknown
    pending = problem(await api.buy(8, key="first"), 503, "payment_pending")
    problem(await api.buy(9, key="second"), 409, "purchase_in_progress")
    assert await count(sql, "idempotency_key") == 0  # neither answer was stored
    server.start()
    report = (await api.client.post("/internal/v1/billing/run", headers=api.as_service())).json()
    assert report["purchases_completed"] == 1
    assert len(server.charges_for(pending["invoice_id"])) == 1
    # Both keys run again: the first finds its invoice paid, the second buys for real now.
    r = await api.buy(8, key="first")
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["id"] == pending["invoice_id"] and not replayed(r)
    r = await api.buy(9, key="second")
    assert r.status_code == 201, r.text
    assert r.json()["summary"]["seats"] == 9
    assert len(server.charges) == 2
