"""An operation's facts are declared once, at its route (app/operations.py), and the request's
``Idempotency-Key`` dependency reads the same declaration the OpenAPI document is built from."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter

from app.deps import OnceDep
from app.errors import NotAdmin
from app.operations import USER, Key, declare
from tests.conftest import Api, problem

PROBE = "/v1/accounts/{account_id}/conversations/probe-{key}"


def add_probe(app: Any, key: Key) -> None:
    """A route declaring ``key`` in a router the app includes, as every router is, answering
    with the key it was given."""
    router = APIRouter()

    @router.post(PROBE.replace("{key}", key.value))
    @declare(*USER, NotAdmin, key=key)
    async def probe(once: OnceDep) -> dict[str, str | None]:
        req = once.require_key() if once.key_required else once.request
        return {"key": req.key if req is not None else None}

    app.include_router(router)


@pytest.mark.parametrize("key", [Key.REQUIRED, Key.OPTIONAL])
async def test_a_missing_key_is_refused_exactly_where_it_is_declared_required(
    app: Any, api: Api, key: Key
) -> None:
    add_probe(app, key)
    path = f"/probe-{key.value}"
    without = await api.call("POST", "acme", path, user="alice", json={})
    if key is Key.REQUIRED:
        problem(without, 400, "idempotency_key_required")
    else:
        assert (without.status_code, without.json()) == (200, {"key": None}), without.text
    headers: Any = {"Idempotency-Key": "k-1"}
    given = await api.call("POST", "acme", path, user="alice", json={}, headers=headers)
    assert (given.status_code, given.json()) == (200, {"key": "k-1"}), given.text
