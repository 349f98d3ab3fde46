"""``GET .../users``: the account's users from the directory, for choosing whom to assign."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, auth, problem, user_token


def gina() -> dict[str, str]:
    """globex's primary admin, calling on acme's path."""
    return auth(user_token("globex", "gina"))


async def users(api: Api, query: str = "", user: str | None = "alice") -> Any:
    r = await api.call("GET", "acme", f"/users{query}", user=user)
    assert r.status_code == 200, r.text
    return r.json()


async def test_users_list_the_directory_with_agents(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    body = await users(api)
    assert body["next_cursor"] is None
    # Newest first, like every list; only acme's users.
    assert body["data"] == [
        {
            "user_id": "carol",
            "name": "Carol",
            "email": "carol@acme.test",
            "role": "user",
            "agent": True,
        },
        {
            "user_id": "bob",
            "name": "Bob",
            "email": "bob@acme.test",
            "role": "admin",
            "agent": False,
        },
        {
            "user_id": "alice",
            "name": "Alice",
            "email": "alice@acme.test",
            "role": "primary_admin",
            "agent": False,
        },
    ]


async def test_users_follow_unassignment_and_role_changes(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("bob")).status_code == 201
    assert (await api.unassign("bob")).status_code == 204
    assert (await api.put_user("acme", "bob", "user")).status_code == 200
    (bob,) = [u for u in (await users(api))["data"] if u["user_id"] == "bob"]
    assert (bob["role"], bob["agent"]) == ("user", False)


async def test_users_are_paginated(api: Api) -> None:
    added = await api.add_users(7)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        body = await users(api, f"?limit=3&cursor={cursor}" if cursor else "?limit=3")
        assert len(body["data"]) <= 3
        seen += [u["user_id"] for u in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 4  # 10 users, 3 a page
    assert sorted(seen) == sorted(["alice", "bob", "carol", *added])
    assert len(seen) == len(set(seen))


async def test_users_roles(api: Api) -> None:
    await users(api, user="bob")
    await users(api, user=None)  # a service: every GET under /v1
    problem(await api.call("GET", "acme", "/users", user="carol"), 403, "not_admin")
    problem(await api.call("GET", "acme", "/users", headers=gina()), 404, "not_found")
    r = await api.call("GET", "acme", "/users?cursor=not-a-cursor", user="alice")
    problem(r, 422, "validation_error")
