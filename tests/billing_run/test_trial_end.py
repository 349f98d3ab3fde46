"""R10: the trial ends at ``trial_ends_at`` exactly, whether or not the billing run has recorded
it: from that instant the agent check answers ``active: false`` and no seat can be assigned.

No billing run at all here: entitlement is decided when the request is made.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.conftest import Api, problem


async def agent_check(api: Api, user_id: str) -> dict[str, object]:
    """``GET .../agents/{user_id}`` as the user, as the inbox asks on every page load."""
    r = await api.call("GET", "acme", f"/agents/{user_id}", user=user_id)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_r10_trial_ends_exactly_at_trial_ends_at(api: Api) -> None:
    r = await api.start_trial()
    assert r.status_code == 201, r.text
    ends_at = datetime.fromisoformat(r.json()["trial"]["ends_at"])
    assert (await api.assign("bob")).status_code == 201
    await api.add_users(2)  # u0, u1

    await api.set_clock(ends_at - timedelta(seconds=1))
    assert await agent_check(api, "bob") == {"user_id": "bob", "agent": True, "active": True}
    assert (await api.assign("u0")).status_code == 201
    assert (await agent_check(api, "u0"))["active"] is True

    await api.set_clock(ends_at)
    for user_id in ("bob", "u0"):
        assert await agent_check(api, user_id) == {
            "user_id": user_id,
            "agent": True,
            "active": False,
        }
    problem(await api.assign("u1"), 409, "no_active_plan")
    # Nothing was lost: the assignments are kept for a later purchase (R10).
    summary = await api.summary()
    assert summary["assigned"] == 2
    assert summary["available"] == 0
