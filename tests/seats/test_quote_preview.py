"""R8 for the slider: ``GET .../quote-preview`` is a quote's body, computed and not stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, auth, problem, user_token
from tests.seats.test_quote import QUOTE_FIELDS, quote, snapshot


def gina() -> dict[str, str]:
    """globex's primary admin, calling on acme's path."""
    return auth(user_token("globex", "gina"))


async def preview(
    api: Api, seats: Any, account_id: str = "acme", user: str | None = "alice"
) -> Any:
    r = await api.call("GET", account_id, f"/quote-preview?seats={seats}", user=user)
    assert r.status_code == 200, r.text
    return r.json()


def body_of(quote_body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in quote_body.items() if k not in ("id", "expires_at")}


async def test_preview_has_the_quote_fields_but_id_and_expiry(api: Api) -> None:
    body = await preview(api, 5)
    assert set(body) == QUOTE_FIELDS - {"id", "expires_at"}
    assert body["due_now"] == 3167  # round(5 * 1900 * 10 / 30), SPEC §3's example


@pytest.mark.parametrize("plan", ["none", "trialing", "active"])
async def test_preview_prices_exactly_as_a_quote(api: Api, plan: str) -> None:
    if plan == "trialing":
        assert (await api.start_trial()).status_code == 201
    if plan == "active":
        assert (await api.buy(5)).status_code == 201
        for user_id in ("bob", "carol"):
            assert (await api.assign(user_id)).status_code == 201
    for seats in (0, 1, 2, 5, 9, 25, 10_000, 1_000_000_000):
        assert await preview(api, seats) == body_of(await quote(api, seats)), seats


async def test_preview_of_a_yearly_account(api: Api) -> None:
    body = await preview(api, 5, "globex", "gina")
    assert (body["billing_cycle"], body["due_now"], body["cycle_total"]) == (
        "yearly",
        35605,
        5 * 1900 * 12,
    )


async def test_preview_below_the_assigned_seats_is_not_allowed(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    for user_id in ("alice", "bob", "carol"):
        assert (await api.assign(user_id)).status_code == 201
    body = await preview(api, 2)
    assert (body["allowed"], body["assigned"], body["due_now"], body["change"]) == (
        False,
        3,
        0,
        -3,
    )


async def test_preview_stores_nothing(api: Api, sql: Any) -> None:
    assert (await api.buy(5)).status_code == 201
    tables = ("quote", "idempotency_key", "invoice", "event", "plan")
    counts = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)
    before, rows_before = await snapshot(api), await sql(counts)
    for seats in (0, 3, 5, 25):
        await preview(api, seats)
        await preview(api, seats, user="bob")
    assert await snapshot(api) == before
    assert await sql(counts) == rows_before
    assert rows_before[0][0] == 0  # no quote row was ever made


async def test_preview_roles(api: Api) -> None:
    await preview(api, 5, user="bob")  # an admin
    await preview(api, 5, user=None)  # a service: every GET under /v1
    r = await api.call("GET", "acme", "/quote-preview?seats=5", user="carol")
    problem(r, 403, "not_admin")
    # Another account's admin: as if the account did not exist.
    r = await api.call("GET", "acme", "/quote-preview?seats=5", headers=gina())
    problem(r, 404, "not_found")


@pytest.mark.parametrize("seats", ["-1", "1000000001", "abc", "5.5", ""])
async def test_preview_needs_a_valid_total(api: Api, seats: str) -> None:
    r = await api.call("GET", "acme", f"/quote-preview?seats={seats}", user="alice")
    assert problem(r, 422, "validation_error")["errors"]


async def test_preview_needs_a_total(api: Api) -> None:
    r = await api.call("GET", "acme", "/quote-preview", user="alice")
    assert problem(r, 422, "validation_error")["errors"]
