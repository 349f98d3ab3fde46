"""R5: seats are assigned to users of the account (an empty seat, a live plan); unassigning frees
the seat at once. The agents list and the hot ``GET /agents/{id}`` check."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import NOW, Api, problem


async def agent_events(api: Api) -> list[dict[str, Any]]:
    r = await api.call("GET", "acme", "/events?limit=100")
    assert r.status_code == 200, r.text
    return [e for e in r.json()["data"] if e["type"].startswith("agent.")]


async def check(api: Api, user_id: str, user: str = "carol") -> Any:
    return await api.call("GET", "acme", f"/agents/{user_id}", user=user)


async def test_r5_assign_a_seat(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    r = await api.assign("carol")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["user_id"], body["assigned_by"]) == ("carol", "user:alice")
    assert datetime.fromisoformat(body["assigned_at"]) == NOW
    r = await api.assign("alice", user="bob")  # an admin may assign too, even the primary admin
    assert r.status_code == 201, r.text
    assert r.json()["assigned_by"] == "user:bob"
    summary = await api.summary()
    assert (summary["seats"], summary["assigned"], summary["available"]) == (5, 2, 3)
    [second, first] = await agent_events(api)
    assert (first["type"], first["actor"]) == ("agent.assigned", "user:alice")
    assert first["data"] == {"user_id": "carol", "assigned_before": 0, "assigned_after": 1}
    assert (second["actor"], second["data"]["user_id"]) == ("user:bob", "alice")


async def test_r5_assigning_an_agent_again_is_a_no_op(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    first = await api.assign("carol")
    assert first.status_code == 201
    await api.set_clock(NOW + timedelta(hours=1))
    again = await api.assign("carol", user="bob")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()  # still the first assignment, by alice, at NOW
    assert len(await agent_events(api)) == 1
    assert (await api.summary())["assigned"] == 1


async def test_r5_assign_only_users_of_the_account(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    summary = await api.summary()
    problem(await api.assign("gina"), 404, "user_not_found")  # globex's primary admin
    problem(await api.assign("nobody"), 404, "user_not_found")
    problem(await api.assign("bad.id"), 422, "validation_error")
    assert await api.summary() == summary
    assert await agent_events(api) == []


@pytest.mark.parametrize("plan", ["none", "trial_expired"])
async def test_r5_assign_needs_a_trialing_or_paid_plan(api: Api, plan: str) -> None:
    if plan == "trial_expired":
        assert (await api.start_trial()).status_code == 201
        await api.set_clock(NOW + timedelta(days=14, seconds=1))
        r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
        assert r.json()["trials_expired"] == 1
    problem(await api.assign("carol"), 409, "no_active_plan")
    assert (await api.summary())["assigned"] == 0
    assert await agent_events(api) == []


async def test_r5_assign_needs_an_empty_seat(api: Api) -> None:
    assert (await api.buy(2)).status_code == 201
    assert (await api.assign("alice")).status_code == 201
    assert (await api.assign("bob")).status_code == 201
    summary = await api.summary()
    body = problem(await api.assign("carol"), 409, "no_empty_seat")
    assert (body["seats"], body["assigned"]) == (2, 2)
    assert await api.summary() == summary
    assert (await check(api, "carol")).json()["agent"] is False


async def test_r5_unassign_frees_the_seat_at_once(api: Api) -> None:
    assert (await api.buy(1)).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    assert (await api.summary())["available"] == 0
    r = await api.unassign("carol", user="bob")
    assert r.status_code == 204, r.text
    assert r.content == b""
    summary = await api.summary()
    assert (summary["assigned"], summary["available"]) == (0, 1)
    assert (await check(api, "carol")).json() == {
        "user_id": "carol",
        "agent": False,
        "active": False,
    }
    assert (await api.assign("bob")).status_code == 201  # the freed seat is usable now
    unassigned = (await agent_events(api))[1]
    assert (unassigned["type"], unassigned["actor"]) == ("agent.unassigned", "user:bob")
    assert unassigned["data"] == {"user_id": "carol", "assigned_before": 1, "assigned_after": 0}


async def test_r5_unassign_a_non_agent(api: Api) -> None:
    assert (await api.buy(1)).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    assert (await api.unassign("carol")).status_code == 204
    problem(await api.unassign("carol"), 404, "not_an_agent")
    problem(await api.unassign("bob"), 404, "not_an_agent")
    assert (await api.summary())["assigned"] == 0
    assert [e["type"] for e in await agent_events(api)] == ["agent.unassigned", "agent.assigned"]


async def test_agents_list_walks_all_pages_newest_first(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    users = await api.add_users(5)
    for i, user_id in enumerate(users):
        await api.set_clock(NOW + timedelta(seconds=i))
        assert (await api.assign(user_id)).status_code == 201
    seen: list[str] = []
    pages = 0
    url = "/agents?limit=2"
    while True:
        r = await api.call("GET", "acme", url, user="carol")
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == {"data", "next_cursor"}
        assert len(page["data"]) <= 2
        seen += [a["user_id"] for a in page["data"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        url = f"/agents?limit=2&cursor={page['next_cursor']}"
    assert pages == 3
    assert seen == list(reversed(users))  # newest first, each once
    r = await api.call("GET", "acme", "/agents", user="carol")
    assert [a["user_id"] for a in r.json()["data"]] == seen
    assert r.json()["next_cursor"] is None


async def test_agents_list_same_second_has_no_duplicates(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    users = await api.add_users(5)
    for user_id in users:  # the clock stands still: ties are broken by user id
        assert (await api.assign(user_id)).status_code == 201
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        r = await api.call("GET", "acme", f"/agents?limit=2{cursor}", user="carol")
        seen += [a["user_id"] for a in r.json()["data"]]
        if r.json()["next_cursor"] is None:
            break
        cursor = f"&cursor={r.json()['next_cursor']}"
    assert sorted(seen) == sorted(users)
    assert len(seen) == len(set(seen))


async def test_agents_list_bad_query(api: Api) -> None:
    for query in ("cursor=!!!", "cursor=abc", "limit=0", "limit=101"):
        r = await api.call("GET", "acme", f"/agents?{query}", user="carol")
        problem(r, 422, "validation_error")


async def test_agent_check(api: Api) -> None:
    assert (await api.buy(2)).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    for reader in ("carol", "bob", "alice"):
        r = await check(api, "carol", user=reader)
        assert r.json() == {"user_id": "carol", "agent": True, "active": True}
    r = await api.call("GET", "acme", "/agents/carol")  # a service
    assert r.json() == {"user_id": "carol", "agent": True, "active": True}
    assert (await check(api, "bob")).json() == {"user_id": "bob", "agent": False, "active": False}
    problem(await check(api, "nobody"), 404, "user_not_found")
    problem(await check(api, "gina"), 404, "user_not_found")


async def test_agent_check_answers_the_bytes_of_its_model(api: Api) -> None:
    """The hot read answers pre-encoded bytes: exactly what the response model would send."""
    assert (await api.buy(2)).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    r = await check(api, "carol")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content == b'{"user_id":"carol","agent":true,"active":true}'
    assert r.headers["content-length"] == str(len(r.content))
    assert r.headers["x-request-id"]


async def test_agent_check_errors_in_their_order(api: Api) -> None:
    """Authorization comes from the same statement, with get_caller's precedence."""
    path = api.url("acme", "/agents/carol")
    problem(await api.client.get(path), 401, "unauthenticated")
    # another account's user: the path's account does not exist for it
    problem(await api.client.get(path, headers=api.as_user("globex", "gina")), 404, "not_found")
    # an account that does not exist: not_found for a service, before the target is looked
    # at; its own user's token is a user the directory does not know
    nosuch = api.url("nosuch", "/agents/carol")
    problem(await api.client.get(nosuch, headers=api.as_service()), 404, "not_found")
    r = await api.client.get(nosuch, headers=api.as_user("nosuch", "alice"))
    problem(r, 403, "unknown_user")
    # a token's user the directory does not know, even for a target that does not exist
    for target in ("carol", "nobody"):
        r = await api.client.get(
            api.url("acme", f"/agents/{target}"), headers=api.as_user("acme", "mallory")
        )
        problem(r, 403, "unknown_user")
    problem(await check(api, "nobody"), 404, "user_not_found")
    problem(await api.call("GET", "acme", "/agents/nobody"), 404, "user_not_found")
    problem(await check(api, "bad id!"), 422, "validation_error")


async def test_r5_assigned_counter_matches_the_assignments(
    api: Api, sql: Callable[..., Any]
) -> None:
    async def counts() -> tuple[int, int, int]:
        [(rows,)] = await sql("SELECT COUNT(*) FROM assignment WHERE account_id = :a", a="acme")
        [(counter,)] = await sql("SELECT assigned FROM plan WHERE account_id = :a", a="acme")
        return rows, counter, (await api.summary())["assigned"]

    assert (await api.start_trial()).status_code == 201
    users = await api.add_users(6)
    for user_id in users:
        assert (await api.assign(user_id)).status_code == 201
    assert (await api.assign(users[0])).status_code == 200
    assert (await api.unassign(users[1])).status_code == 204
    problem(await api.unassign(users[1]), 404, "not_an_agent")
    assert (await api.assign(users[1], user="bob")).status_code == 201
    assert (await api.unassign(users[2], user="bob")).status_code == 204
    # Removing a user from the directory frees its seat too.
    r = await api.client.delete(
        f"/internal/v1/accounts/acme/users/{users[3]}", headers=api.as_service()
    )
    assert r.status_code in (200, 204), r.text
    assert await counts() == (4, 4, 4)
    assert (await api.buy(4)).status_code == 201
    assert await counts() == (4, 4, 4)
    problem(await api.assign("carol"), 409, "no_empty_seat")
    assert await counts() == (4, 4, 4)
