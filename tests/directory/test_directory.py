"""The directory: accounts and users, upserted by the platform (SPEC §4, internal endpoints)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.conftest import NOW, Api, make_settings, problem

ACCOUNT = {
    "name": "Initech",
    "billing_cycle": "monthly",
    "billing_anchor": "2026-11-01",
    "payment_method": "pm_card_visa",
}

Sql = Callable[..., Any]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Prices in three currencies, so that accounts may change theirs (R13)."""
    return make_settings(database_url, prices={"USD": 1900, "EUR": 1700, "GBP": 1500})


async def put_account_raw(api: Api, account_id: str, body: Any) -> httpx.Response:
    return await api.client.put(
        f"/internal/v1/accounts/{account_id}", json=body, headers=api.as_service()
    )


async def put_user_raw(api: Api, account_id: str, user_id: str, body: Any) -> httpx.Response:
    return await api.client.put(
        f"/internal/v1/accounts/{account_id}/users/{user_id}", json=body, headers=api.as_service()
    )


async def delete_user(api: Api, account_id: str, user_id: str) -> httpx.Response:
    return await api.client.delete(
        f"/internal/v1/accounts/{account_id}/users/{user_id}", headers=api.as_service()
    )


def failing_fields(body: dict[str, Any]) -> set[str]:
    """The last part of every failing field's ``loc``."""
    return {error["loc"][-1] for error in body["errors"]}


async def roles(sql: Sql, account_id: str) -> dict[str, str]:
    rows = await sql(
        "SELECT id, role FROM account_user WHERE account_id = :account_id", account_id=account_id
    )
    return {row[0]: row[1] for row in rows}


async def primary_admins_per_account(sql: Sql) -> dict[str, int]:
    rows = await sql(
        "SELECT account_id, COUNT(*) FROM account_user WHERE role = 'primary_admin' "
        "GROUP BY account_id"
    )
    return {row[0]: row[1] for row in rows}


# --- accounts ------------------------------------------------------------------------------


async def test_put_account_creates_then_updates(api: Api) -> None:
    r = await put_account_raw(api, "initech", ACCOUNT)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"] == "initech"
    assert created["billing_cycle"] == "monthly"
    assert created["billing_anchor"] == "2026-11-01"
    assert created["currency"] == "USD"  # SEATS_CURRENCY's default
    assert created["created_at"] == created["updated_at"]

    await api.set_clock(NOW.replace(day=22))
    update = {**ACCOUNT, "name": "Initech Ltd", "billing_cycle": "yearly", "currency": "EUR"}
    r = await put_account_raw(api, "initech", update)
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["name"] == "Initech Ltd"
    assert updated["billing_cycle"] == "yearly"
    assert updated["currency"] == "EUR"
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] != created["updated_at"]
    # the plan the account got at creation is there and follows the update
    summary = (await api.call("GET", "initech")).json()
    assert summary["status"] == "none"
    assert summary["billing_cycle"] == "yearly"
    assert summary["currency"] == "EUR"


async def test_account_update_keeps_the_plan(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    r = await api.put_account("acme", name="Acme Corp", payment_method="pm_card_mastercard")
    assert r.status_code == 200, r.text
    summary = await api.summary()
    assert summary["status"] == "trialing"
    assert summary["seats"] == 20
    assert summary["assigned"] == 1


async def test_put_account_validation_error_names_the_field(api: Api) -> None:
    cases: list[tuple[str, Any]] = [
        ("billing_cycle", "weekly"),
        ("billing_cycle", "Monthly"),
        ("billing_cycle", None),
        ("billing_anchor", "2026-02-30"),
        ("billing_anchor", "tomorrow"),
        ("billing_anchor", "2026-13-01"),
        ("billing_anchor", 20261101),
        ("currency", "usd"),
        ("currency", "US"),
        ("currency", "EURO"),
        ("currency", 978),
        ("name", ""),
        ("name", "x" * 201),
        ("payment_method", ""),
        ("payment_method", "pm card"),
    ]
    for field, value in cases:
        r = await put_account_raw(api, "initech", {**ACCOUNT, field: value})
        assert r.status_code == 422, (field, value, r.text)
        body = problem(r, 422, "validation_error")
        assert failing_fields(body) == {field}, (field, value, body)
        assert all(error["loc"][0] == "body" for error in body["errors"])
    assert (await api.call("GET", "initech")).status_code == 404  # nothing was created


async def test_put_account_unknown_field_is_forbidden(api: Api) -> None:
    r = await put_account_raw(api, "initech", {**ACCOUNT, "seats": 100})
    body = problem(r, 422, "validation_error")
    assert "seats" in failing_fields(body)
    assert (await api.call("GET", "initech")).status_code == 404


async def test_put_account_missing_fields_are_all_listed(api: Api) -> None:
    r = await put_account_raw(api, "initech", {})
    body = problem(r, 422, "validation_error")
    assert failing_fields(body) == {"name", "billing_cycle", "billing_anchor", "payment_method"}
    r = await put_account_raw(api, "initech", {"name": "Initech"})
    body = problem(r, 422, "validation_error")
    assert failing_fields(body) == {"billing_cycle", "billing_anchor", "payment_method"}


async def test_put_account_bad_id_in_path_is_validation_error(api: Api) -> None:
    for account_id in ("a b", "a" * 65, "acme!", "ac.me", "é"):
        r = await put_account_raw(api, account_id, ACCOUNT)
        assert r.status_code == 422, (account_id, r.text)
        body = problem(r, 422, "validation_error")
        assert failing_fields(body) == {"account_id"}, (account_id, body)
        assert body["errors"][0]["loc"][0] == "path"


async def test_put_account_accepts_a_64_character_id(api: Api) -> None:
    account_id = "A-z_0" + "9" * 59
    assert len(account_id) == 64
    r = await put_account_raw(api, account_id, ACCOUNT)
    assert r.status_code == 201, r.text


async def test_currency_may_change_before_any_invoice(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201  # a trial makes no invoice
    r = await api.put_account("acme", currency="EUR")
    assert r.status_code == 200, r.text
    assert (await api.summary())["currency"] == "EUR"
    r = await api.buy(5)
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["currency"] == "EUR"


async def test_currency_is_locked_once_an_invoice_exists(api: Api, sql: Sql) -> None:
    assert (await api.buy(5)).status_code == 201
    r = await api.put_account("acme", currency="EUR")
    body = problem(r, 409, "currency_locked")
    assert "USD" in body["detail"]
    assert (await api.summary())["currency"] == "USD"
    rows = await sql("SELECT currency FROM account WHERE id = 'acme'")
    assert rows[0][0] == "USD"
    # other fields may still change, with the same currency
    r = await api.put_account("acme", currency="USD", name="Acme Corp")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Acme Corp"


async def test_declined_purchase_invoice_also_locks_the_currency(api: Api) -> None:
    assert (await api.put_account("acme", payment_method="pm_decline_card")).status_code == 200
    problem(await api.buy(5), 402, "payment_declined")
    r = await api.put_account("acme", payment_method="pm_decline_card", currency="GBP")
    problem(r, 409, "currency_locked")


async def test_directory_endpoints_need_a_token(api: Api) -> None:
    r = await api.client.put("/internal/v1/accounts/initech", json=ACCOUNT)
    problem(r, 401, "unauthenticated")
    r = await api.client.delete("/internal/v1/accounts/acme/users/carol")
    problem(r, 401, "unauthenticated")


# --- users ---------------------------------------------------------------------------------


async def test_put_user_creates_then_updates(api: Api) -> None:
    body = {"email": "dave@acme.test", "name": "Dave", "role": "user"}
    r = await put_user_raw(api, "acme", "dave", body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["account_id"] == "acme"
    assert created["id"] == "dave"
    assert created["role"] == "user"
    assert (await api.call("GET", "acme", user="dave")).status_code == 200

    r = await put_user_raw(api, "acme", "dave", {**body, "role": "admin", "name": "David"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "admin"
    assert r.json()["name"] == "David"
    # the new role counts at once: an admin may quote
    r = await api.call("POST", "acme", "/quotes", user="dave", json={"seats": 3})
    assert r.status_code == 201, r.text


async def test_the_same_user_id_in_two_accounts_is_two_users(api: Api, sql: Sql) -> None:
    r = await api.put_user("globex", "carol", "admin")
    assert r.status_code == 201, r.text
    assert (await roles(sql, "acme"))["carol"] == "user"
    assert (await roles(sql, "globex"))["carol"] == "admin"


async def test_put_user_bad_role_is_validation_error(api: Api, sql: Sql) -> None:
    for role in ("owner", "Admin", "", None, 1, "primary admin"):
        body = {"email": "d@acme.test", "name": "D", "role": role}
        r = await put_user_raw(api, "acme", "dave", body)
        assert r.status_code == 422, (role, r.text)
        assert failing_fields(problem(r, 422, "validation_error")) == {"role"}, role
    assert "dave" not in await roles(sql, "acme")


async def test_put_user_bad_email_is_validation_error(api: Api, sql: Sql) -> None:
    for email in ("dave", "dave@", "@acme.test", "da ve@acme.test", "a@b@c", "", None):
        body = {"email": email, "name": "D", "role": "user"}
        r = await put_user_raw(api, "acme", "dave", body)
        assert r.status_code == 422, (email, r.text)
        assert failing_fields(problem(r, 422, "validation_error")) == {"email"}, email
    assert "dave" not in await roles(sql, "acme")


async def test_put_user_missing_and_unknown_fields(api: Api) -> None:
    body = problem(await put_user_raw(api, "acme", "dave", {}), 422, "validation_error")
    assert failing_fields(body) == {"email", "name", "role"}
    extra = {"email": "d@acme.test", "name": "D", "role": "user", "account_id": "globex"}
    body = problem(await put_user_raw(api, "acme", "dave", extra), 422, "validation_error")
    assert failing_fields(body) == {"account_id"}


async def test_put_user_bad_id_in_path_is_validation_error(api: Api) -> None:
    body = {"email": "d@acme.test", "name": "D", "role": "user"}
    for user_id in ("a b", "u" * 65, "dave!"):
        r = await put_user_raw(api, "acme", user_id, body)
        assert r.status_code == 422, (user_id, r.text)
        assert failing_fields(problem(r, 422, "validation_error")) == {"user_id"}, user_id
        r = await delete_user(api, "acme", user_id)
        assert failing_fields(problem(r, 422, "validation_error")) == {"user_id"}, user_id


async def test_put_user_for_unknown_account_is_not_found(api: Api, sql: Sql) -> None:
    r = await api.put_user("nope", "dave", "primary_admin")
    problem(r, 404, "not_found")
    assert await roles(sql, "nope") == {}


async def test_naming_a_new_primary_admin_demotes_the_old_one(api: Api, sql: Sql) -> None:
    r = await api.put_user("acme", "bob", "primary_admin")
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "primary_admin"
    assert await roles(sql, "acme") == {"alice": "admin", "bob": "primary_admin", "carol": "user"}
    # rights follow: alice (now admin) may not start the trial, bob may; alice may still assign
    problem(await api.start_trial(user="alice"), 403, "not_primary_admin")
    assert (await api.start_trial(user="bob")).status_code == 201
    assert (await api.assign("carol", user="alice")).status_code == 201
    # a brand-new user may be named primary admin too
    r = await api.put_user("acme", "dave", "primary_admin")
    assert r.status_code == 201, r.text
    assert await roles(sql, "acme") == {
        "alice": "admin",
        "bob": "admin",
        "carol": "user",
        "dave": "primary_admin",
    }
    # globex is untouched
    assert await roles(sql, "globex") == {"gina": "primary_admin"}


async def test_naming_the_primary_admin_again_is_a_no_op(api: Api, sql: Sql) -> None:
    r = await api.put_user("acme", "alice", "primary_admin")
    assert r.status_code == 200, r.text
    assert await roles(sql, "acme") == {"alice": "primary_admin", "bob": "admin", "carol": "user"}


@pytest.mark.parametrize("role", ["admin", "user"])
async def test_demoting_the_primary_admin_is_primary_admin_required(
    api: Api, sql: Sql, role: str
) -> None:
    r = await api.put_user("acme", "alice", role)
    problem(r, 409, "primary_admin_required")
    assert (await roles(sql, "acme"))["alice"] == "primary_admin"
    assert (await api.start_trial(user="alice")).status_code == 201


async def test_deleting_the_primary_admin_is_primary_admin_required(api: Api, sql: Sql) -> None:
    problem(await delete_user(api, "acme", "alice"), 409, "primary_admin_required")
    assert (await roles(sql, "acme"))["alice"] == "primary_admin"
    # once another is named, the former primary admin may go
    assert (await api.put_user("acme", "bob", "primary_admin")).status_code == 200
    assert (await delete_user(api, "acme", "alice")).status_code == 204
    assert await roles(sql, "acme") == {"bob": "primary_admin", "carol": "user"}


async def test_deleting_a_user_then_again_is_user_not_found(api: Api) -> None:
    r = await delete_user(api, "acme", "carol")
    assert r.status_code == 204, r.text
    assert r.content == b""
    problem(await delete_user(api, "acme", "carol"), 404, "user_not_found")
    problem(await api.call("GET", "acme", user="carol"), 403, "unknown_user")
    problem(await api.call("GET", "acme", "/agents/carol"), 404, "user_not_found")
    problem(await api.assign("carol"), 404, "user_not_found")
    problem(await delete_user(api, "acme", "nobody"), 404, "user_not_found")
    problem(await delete_user(api, "nope", "carol"), 404, "not_found")


async def test_deleting_a_user_who_holds_a_seat_frees_it(api: Api, sql: Sql) -> None:
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    assert (await api.assign("bob")).status_code == 201
    assert (await api.summary())["assigned"] == 2

    assert (await delete_user(api, "acme", "carol")).status_code == 204

    summary = await api.summary()
    assert summary["assigned"] == 1
    assert summary["available"] == 19
    agents = (await api.call("GET", "acme", "/agents")).json()["data"]
    assert [a["user_id"] for a in agents] == ["bob"]
    events = (await api.call("GET", "acme", "/events")).json()["data"]
    removed = [e for e in events if e["type"] == "agent.unassigned"]
    assert len(removed) == 1
    assert removed[0]["actor"] == "service:platform"
    assert removed[0]["data"]["user_id"] == "carol"
    assert removed[0]["data"]["reason"] == "user_removed"
    rows = await sql("SELECT COUNT(*) FROM assignment WHERE account_id = 'acme'")
    assert rows[0][0] == 1
    rows = await sql("SELECT assigned FROM plan WHERE account_id = 'acme'")
    assert rows[0][0] == 1


async def test_deleting_a_user_without_a_seat_records_no_event(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    assert (await delete_user(api, "acme", "carol")).status_code == 204
    events = (await api.call("GET", "acme", "/events")).json()["data"]
    assert [e["type"] for e in events] == ["trial.started"]


async def test_at_most_one_primary_admin_per_account_after_changes(api: Api, sql: Sql) -> None:
    steps = [
        ("put", "bob", "primary_admin"),
        ("put", "carol", "primary_admin"),
        ("put", "alice", "user"),
        ("put", "bob", "user"),
        ("delete", "alice", None),
        ("put", "carol", "admin"),  # refused: carol is the primary admin
        ("delete", "carol", None),  # refused too
        ("put", "alice", "primary_admin"),  # back, as a new user
        ("put", "gina", "primary_admin"),  # on acme: a new user, not globex's gina
    ]
    for action, user_id, role in steps:
        if action == "put":
            r = await api.put_user("acme", user_id, role or "user")
        else:
            r = await delete_user(api, "acme", user_id)
        assert r.status_code in (200, 201, 204, 409), r.text
        counts = await primary_admins_per_account(sql)
        assert counts == {"acme": 1, "globex": 1}, (action, user_id, role)
    assert await roles(sql, "acme") == {
        "alice": "admin",
        "bob": "user",
        "carol": "admin",
        "gina": "primary_admin",
    }
    assert await roles(sql, "globex") == {"gina": "primary_admin"}


async def test_concurrent_primary_admin_changes_leave_exactly_one(api: Api, sql: Sql) -> None:
    candidates = await api.add_users(6, prefix="p")
    results = await asyncio.gather(
        *(api.put_user("acme", user_id, "primary_admin") for user_id in candidates)
    )
    for r in results:
        # a loser of a race may be told to retry (409 conflict), never a 500
        assert r.status_code in (200, 409), r.text
    assert any(r.status_code == 200 for r in results)
    assert await primary_admins_per_account(sql) == {"acme": 1, "globex": 1}
    winner = [uid for uid, role in (await roles(sql, "acme")).items() if role == "primary_admin"]
    assert len(winner) == 1
    assert (await api.start_trial(user=winner[0])).status_code == 201


async def test_database_refuses_a_second_primary_admin(api: Api, sql: Sql) -> None:
    """The unique partial index holds even for a write that bypasses the service."""
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await sql("UPDATE account_user SET role = 'primary_admin' WHERE account_id = 'acme'")
    assert await primary_admins_per_account(sql) == {"acme": 1, "globex": 1}


async def test_put_account_refuses_a_number_as_the_billing_anchor(api: Api) -> None:
    r = await api.put_account("numeric", billing_anchor=0)
    body = problem(r, 422, "validation_error")
    assert ["body", "billing_anchor"] in [e["loc"] for e in body["errors"]]
    r = await api.client.put(
        "/internal/v1/test-clock", json={"now": 1_800_000_000}, headers=api.as_service()
    )
    problem(r, 422, "validation_error")
