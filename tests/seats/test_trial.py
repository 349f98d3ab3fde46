"""R3: the 20-seat, 14-day trial, once per account, free."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.conftest import NOW, Api, problem


async def ledger(api: Api, what: str, account_id: str = "acme") -> list[dict[str, Any]]:
    r = await api.call("GET", account_id, f"/{what}?limit=100")
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def test_r3_trial_gives_20_seats_for_14_days(api: Api) -> None:
    r = await api.start_trial()
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "trialing"
    assert (body["seats"], body["assigned"], body["available"]) == (20, 0, 20)
    started = datetime.fromisoformat(body["trial"]["started_at"])
    ends = datetime.fromisoformat(body["trial"]["ends_at"])
    assert started == NOW
    assert ends == started + timedelta(days=14)
    assert body["trial"]["seats"] == 20
    # Free: nothing to pay per month or per cycle, no period to renew.
    assert (body["monthly_total"], body["cycle_total"]) == (0, 0)
    assert body["current_period"] is None
    assert body["next_renewal_at"] is None
    assert await api.summary() == body


async def test_r3_trial_costs_nothing(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    assert await ledger(api, "invoices") == []


async def test_r3_trial_started_event_names_its_actor(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    [event] = await ledger(api, "events")
    assert event["type"] == "trial.started"
    assert event["actor"] == "user:alice"
    assert datetime.fromisoformat(event["at"]) == NOW
    assert event["data"]["seats_before"] == 0
    assert event["data"]["seats_after"] == 20
    assert datetime.fromisoformat(event["data"]["ends_at"]) == NOW + timedelta(days=14)


async def test_r3_trial_only_once(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    before = (await api.summary(), await ledger(api, "events"))
    problem(await api.start_trial(), 409, "trial_already_used")
    assert (await api.summary(), await ledger(api, "events")) == before


async def test_r3_trial_once_even_after_it_expired(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    await api.set_clock(NOW + timedelta(days=15))
    r = await api.client.post("/internal/v1/billing/run", headers=api.as_service())
    assert r.json()["trials_expired"] == 1
    problem(await api.start_trial(), 409, "trial_already_used")
    assert (await api.summary())["status"] == "trial_expired"


async def test_r3_no_trial_after_buying_directly(api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    before = (await api.summary(), await ledger(api, "events"))
    problem(await api.start_trial(), 409, "already_subscribed")
    assert (await api.summary(), await ledger(api, "events")) == before


async def test_r3_no_seats_beyond_20_during_the_trial(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    users = await api.add_users(21)
    for user_id in users[:20]:
        assert (await api.assign(user_id)).status_code == 201
    summary = await api.summary()
    assert (summary["seats"], summary["assigned"], summary["available"]) == (20, 20, 0)
    problem(await api.assign(users[20]), 409, "no_empty_seat")
    assert await api.summary() == summary
    agent = await api.call("GET", "acme", f"/agents/{users[20]}", user="carol")
    assert agent.json() == {"user_id": users[20], "agent": False, "active": False}


async def test_r3_trial_agents_are_active(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    r = await api.call("GET", "acme", "/agents/carol", user="carol")
    assert r.json() == {"user_id": "carol", "agent": True, "active": True}
