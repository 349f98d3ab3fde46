"""R1: only the primary admin starts the trial, buys, removes and pays. R5: admins manage
agents. Ledger reads are for admins. Every refused request changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import Api, problem

Sql = Callable[..., Any]


async def snapshot(api: Api, sql: Sql) -> tuple[Any, ...]:
    """Everything a refused request could have touched."""
    reads = [
        (await api.call("GET", "acme", path)).json()
        for path in ("", "/invoices?limit=100", "/events?limit=100", "/agents?limit=100")
    ]
    counts = await sql(
        "SELECT (SELECT COUNT(*) FROM quote), (SELECT COUNT(*) FROM idempotency_key), "
        "(SELECT COUNT(*) FROM invoice), (SELECT updated_at FROM plan WHERE account_id = 'acme')"
    )
    return (*reads, tuple(counts[0]))


@pytest.fixture
async def active(api: Api) -> str:
    """acme active with 5 seats and carol as an agent; returns the purchase invoice id."""
    r = await api.buy(5)
    assert r.status_code == 201, r.text
    assert (await api.assign("carol")).status_code == 201
    invoice_id: str = r.json()["invoice"]["id"]
    return invoice_id


PRIMARY_ADMIN_WRITES = [
    ("/trial", None),
    ("/purchases", {"seats": 8}),
    ("/removals", {"seats": 2}),
    ("/invoices/{invoice}/pay", None),
]


@pytest.mark.parametrize("caller", ["bob", "carol", None], ids=["admin", "user", "service"])
async def test_r1_only_the_primary_admin_changes_seats(
    api: Api, sql: Sql, active: str, caller: str | None
) -> None:
    for path, body in PRIMARY_ADMIN_WRITES:
        before = await snapshot(api, sql)
        url = path.format(invoice=active)
        r = await api.call("POST", "acme", url, user=caller, json=body, key=f"k-{path[1:4]}")
        problem(r, 403, "not_primary_admin")
        assert await snapshot(api, sql) == before, path


async def test_r1_only_the_primary_admin_pays_an_outstanding_invoice(
    api: Api, sql: Sql, active: str
) -> None:
    assert (await api.put_account("acme", payment_method="pm_decline_card")).status_code == 200
    await api.set_clock(datetime(2026, 12, 1, tzinfo=UTC))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.json()["renewals_declined"] == 1
    assert (await api.put_account("acme", payment_method="pm_card_visa")).status_code == 200
    renewal, _ = (await api.call("GET", "acme", "/invoices")).json()["data"]
    assert (renewal["kind"], renewal["status"]) == ("renewal", "pending")
    pay = f"/invoices/{renewal['id']}/pay"
    before = await snapshot(api, sql)
    for caller in ("bob", "carol", None):
        problem(await api.call("POST", "acme", pay, user=caller), 403, "not_primary_admin")
        assert await snapshot(api, sql) == before, caller
    r = await api.call("POST", "acme", pay, user="alice")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid"
    assert (await api.summary())["status"] == "active"


@pytest.mark.parametrize("caller", ["bob", "carol"])
async def test_r1_trial_is_for_the_primary_admin(api: Api, sql: Sql, caller: str) -> None:
    before = await snapshot(api, sql)
    problem(await api.start_trial(user=caller), 403, "not_primary_admin")
    assert await snapshot(api, sql) == before
    assert (await api.summary())["status"] == "none"


@pytest.mark.parametrize("caller", ["carol", None], ids=["user", "service"])
async def test_r5_only_admins_manage_agents_and_quotes(
    api: Api, sql: Sql, active: str, caller: str | None
) -> None:
    for method, path, body in (
        ("POST", "/quotes", {"seats": 8}),
        ("PUT", "/agents/bob", None),
        ("DELETE", "/agents/carol", None),
    ):
        before = await snapshot(api, sql)
        problem(await api.call(method, "acme", path, user=caller, json=body), 403, "not_admin")
        assert await snapshot(api, sql) == before, (method, path)


async def test_r5_an_admin_manages_agents_and_quotes(api: Api, active: str) -> None:
    r = await api.call("POST", "acme", "/quotes", user="bob", json={"seats": 8})
    assert r.status_code == 201, r.text
    assert (await api.assign("bob", user="bob")).status_code == 201
    assert (await api.unassign("carol", user="bob")).status_code == 204
    agents = (await api.call("GET", "acme", "/agents", user="bob")).json()["data"]
    assert [a["user_id"] for a in agents] == ["bob"]


async def test_r11_ledger_is_read_by_admins_and_services(api: Api, sql: Sql, active: str) -> None:
    for url in ("/invoices", f"/invoices/{active}", "/events"):
        before = await snapshot(api, sql)
        problem(await api.call("GET", "acme", url, user="carol"), 403, "not_admin")
        assert await snapshot(api, sql) == before, url
        for reader in ("bob", "alice", None):
            r = await api.call("GET", "acme", url, user=reader)
            assert r.status_code == 200, r.text


async def test_any_user_reads_the_plan_and_agents(api: Api, active: str) -> None:
    def plan(user: str) -> dict[str, Any]:
        # The same plan for everyone; who asked, and the payment method for admins, differ.
        return {k: v for k, v in summary[user].items() if k not in ("caller", "payment_method")}

    summary = {user: await api.summary(user=user) for user in ("alice", "bob", "carol")}
    assert plan("carol") == plan("alice") == plan("bob")
    r = await api.call("GET", "acme", "/agents", user="carol")
    assert [a["user_id"] for a in r.json()["data"]] == ["carol"]
    r = await api.call("GET", "acme", "/agents/carol", user="carol")
    assert r.json() == {"user_id": "carol", "agent": True, "active": True}
    r = await api.call("GET", "acme", "/agents/bob", user="carol")
    assert r.json() == {"user_id": "bob", "agent": False, "active": False}


async def test_r1_primary_admin_changes_with_the_directory(api: Api, active: str) -> None:
    # Roles come from the directory, not the token: promoting bob demotes alice at once.
    assert (await api.put_user("acme", "bob", "primary_admin")).status_code == 200
    problem(await api.buy(6, user="alice"), 403, "not_primary_admin")
    r = await api.buy(6, user="bob")
    assert r.status_code == 201, r.text
    # alice is an admin now: she still manages agents.
    assert (await api.assign("alice", user="alice")).status_code == 201
