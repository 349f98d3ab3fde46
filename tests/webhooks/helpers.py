"""Making audit events through the API, and reading their ids in order."""

from __future__ import annotations

from tests.conftest import Api
from tests.seats.helpers import events


async def make_events(api: Api, count: int) -> list[str]:
    """``count`` events of acme (a trial, then carol assigned and unassigned), oldest first."""
    before = {e["id"] for e in await events(api)}
    plan = await api.summary()
    made = 0
    if plan["status"] == "none":
        assert (await api.start_trial()).status_code == 201
        made += 1
    agent = any(
        a["user_id"] == "carol" for a in (await api.call("GET", "acme", "/agents")).json()["data"]
    )
    while made < count:
        r = await (api.unassign("carol") if agent else api.assign("carol"))
        assert r.status_code in (201, 204), r.text
        agent = not agent
        made += 1
    new = [e["id"] for e in await events(api) if e["id"] not in before]
    assert len(new) == count
    return list(reversed(new))
