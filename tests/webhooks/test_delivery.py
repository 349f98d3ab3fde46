"""Delivery by an in-process worker to a real loopback receiver (SPEC §8).

Every request the receiver gets is verified with the ``standardwebhooks`` library.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.ledger import repository as ledger
from app.webhooks.models import WebhookDelivery
from app.webhooks.worker import Worker
from tests.conftest import NOW, Api
from tests.webhooks.conftest import attempts, create_endpoint, endpoint, parse, until_attempts
from tests.webhooks.helpers import make_events
from tests.webhooks.receiver import Receiver


async def test_every_event_is_delivered_signed_with_the_spec_body(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    ep = await create_endpoint(api, receiver.url("/a"))
    receiver.trust(ep["secret"])
    ids = await make_events(api, 3)
    got = await receiver.until(3, "/a")
    assert [d.id for d in got] == ids
    for d in got:
        assert d.verified_by == {ep["secret"]}
        assert d.headers["webhook-signature"].startswith("v1,")
        assert d.headers["content-type"] == "application/json"
        body = d.json()
        assert set(body) == {"id", "type", "account_id", "at", "data"}
        assert body["id"] == d.id and body["account_id"] == "acme"
        assert parse(body["at"]) == NOW  # the event's own time: the test clock
    assert [d.json()["type"] for d in got] == [
        "trial.started",
        "agent.assigned",
        "agent.unassigned",
    ]
    # webhook-timestamp is the wall clock of the send, not the (frozen, older) test clock.
    sent = int(got[0].headers["webhook-timestamp"])
    assert abs(sent - got[0].received_at) < 5
    log = await until_attempts(api, ep["id"], 3)
    assert [(a["event_id"], a["attempt"], a["status_code"]) for a in log] == [
        (i, 1, 200) for i in ids
    ]
    assert all(a["next_attempt_at"] is None for a in log)


async def test_event_types_filter_what_an_endpoint_receives(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    only = await create_endpoint(api, receiver.url("/assigned"), event_types=["agent.assigned"])
    everything = await create_endpoint(api, receiver.url("/all"))
    ids = await make_events(api, 3)
    await receiver.until(3, "/all")
    await until_attempts(api, everything["id"], 3)
    # Each endpoint is sent to on its own: wait for this one's too (it may come last).
    await receiver.until(1, "/assigned")
    await until_attempts(api, only["id"], 1)
    assigned = receiver.to("/assigned")
    assert [d.json()["type"] for d in assigned] == ["agent.assigned"]
    assert assigned[0].id == ids[1]


async def test_both_secrets_sign_during_a_rotation_then_only_the_new_one(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    ep = await create_endpoint(api, receiver.url("/a"))
    old = ep["secret"]
    r = await api.client.post(
        f"/internal/v1/webhooks/endpoints/{ep['id']}/rotate-secret", headers=api.as_service()
    )
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old
    receiver.trust(old, new)
    await make_events(api, 1)
    (first,) = await receiver.until(1)
    assert first.verified_by == {old, new}
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    # 24 hours later (on the service clock) the old secret no longer signs.
    await api.set_clock(NOW + timedelta(hours=24, seconds=1))
    await make_events(api, 1)
    second = (await receiver.until(2))[1]
    assert second.verified_by == {new}
    assert len(second.headers["webhook-signature"].split(" ")) == 1


async def test_a_failure_holds_back_only_its_own_endpoint(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    slow = await create_endpoint(api, receiver.url("/slow"))
    await create_endpoint(api, receiver.url("/fast"))
    receiver.plan("/slow", 500)
    ids = await make_events(api, 3)
    # The other endpoint gets all three at once, in order.
    assert [d.id for d in await receiver.until(3, "/fast")] == ids
    await until_attempts(api, slow["id"], 1)
    await asyncio.sleep(0.5)
    # The failed first event holds back the two after it.
    assert [d.id for d in receiver.to("/slow")] == [ids[0]]
    await api.set_clock(NOW + timedelta(seconds=5))
    got = await receiver.until(4, "/slow")
    assert [d.id for d in got] == [ids[0], ids[0], ids[1], ids[2]]


async def test_a_500_is_retried_after_the_schedule_delay_on_the_service_clock(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    ep = await create_endpoint(api, receiver.url("/a"))
    receiver.trust(ep["secret"])
    receiver.plan("/a", 500, 503)
    (event_id,) = await make_events(api, 1)
    (first,) = await until_attempts(api, ep["id"], 1)
    assert first["status_code"] == 500
    assert parse(first["next_attempt_at"]) == NOW + timedelta(seconds=5)
    # Wall-clock time passing does nothing; the service clock short of the delay neither.
    await api.set_clock(NOW + timedelta(seconds=4))
    await asyncio.sleep(0.5)
    assert len(receiver.to("/a")) == 1
    await api.set_clock(NOW + timedelta(seconds=5))
    second = (await until_attempts(api, ep["id"], 2))[1]
    assert (second["attempt"], second["status_code"]) == (2, 503)
    # The next delay, 5 minutes, runs from the failed attempt before it.
    assert parse(second["next_attempt_at"]) == NOW + timedelta(seconds=5, minutes=5)
    await api.set_clock(NOW + timedelta(seconds=5, minutes=5))
    third = (await until_attempts(api, ep["id"], 3))[2]
    assert (third["attempt"], third["status_code"], third["next_attempt_at"]) == (3, 200, None)
    got = receiver.to("/a")
    assert [d.id for d in got] == [event_id] * 3
    assert all(d.verified_by == {ep["secret"]} for d in got)
    assert len({d.body for d in got}) == 1  # the same bytes every time


async def test_410_disables_the_endpoint_at_once_and_says_so(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    gone = await create_endpoint(api, receiver.url("/gone"))
    ops = await create_endpoint(
        api, receiver.url("/ops"), event_types=["webhook_endpoint.disabled"]
    )
    receiver.trust(ops["secret"])
    receiver.plan("/gone", 410)
    await make_events(api, 2)
    (notice,) = await receiver.until(1, "/ops")
    body = notice.json()
    assert body["type"] == "webhook_endpoint.disabled"
    assert body["account_id"] is None
    assert body["data"] == {"endpoint_id": gone["id"], "url": gone["url"], "reason": "gone"}
    assert notice.verified_by == {ops["secret"]}
    state = await endpoint(api, gone["id"])
    assert (state["disabled"], state["disabled_reason"]) == (True, "gone")
    await api.set_clock(NOW + timedelta(days=1))
    await make_events(api, 1)
    await asyncio.sleep(0.5)
    assert len(receiver.to("/gone")) == 1  # nothing more, not even the retry
    # Re-enabled, it gets what was queued for it, in order.
    r = await api.client.patch(
        f"/internal/v1/webhooks/endpoints/{gone['id']}",
        json={"disabled": False},
        headers=api.as_service(),
    )
    assert r.status_code == 200 and r.json()["disabled"] is False, r.text
    got = await receiver.until(3, "/gone")
    assert got[1].id == got[0].id


async def test_five_days_of_failures_disable_the_endpoint(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    failing = await create_endpoint(api, receiver.url("/down"))
    ops = await create_endpoint(
        api, receiver.url("/ops"), event_types=["webhook_endpoint.disabled"]
    )
    receiver.plan("/down", *([500] * 40))
    first, second = await make_events(api, 2)
    count = 0
    while not (await endpoint(api, failing["id"]))["disabled"]:
        count += 1
        assert count <= 30, "still enabled after 30 attempts"
        log = await until_attempts(api, failing["id"], count)
        due = log[-1]["next_attempt_at"]
        if due is not None:
            await api.set_clock(parse(due))
    log = await attempts(api, failing["id"])
    # The first event used its ten attempts (~3.3 days); then the second failed on until
    # five days after the first failure.
    assert [a["attempt"] for a in log if a["event_id"] == first] == list(range(1, 11))
    assert all(a["event_id"] == second for a in log[10:])
    assert parse(log[-1]["at"]) - parse(log[0]["at"]) >= timedelta(days=5)
    assert parse(log[-2]["at"]) - parse(log[0]["at"]) < timedelta(days=5)
    (notice,) = await receiver.until(1, "/ops")
    assert notice.json()["data"]["reason"] == "failing"
    assert (await endpoint(api, failing["id"]))["disabled_reason"] == "failing"
    assert ops["id"] != failing["id"]


async def test_a_rolled_back_transaction_sends_nothing(
    api: Api, app: Any, receiver: Receiver, worker: Worker
) -> None:
    ep = await create_endpoint(api, receiver.url("/a"))
    db = app.state.db
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await ledger.add_event(
                session, account_id="acme", type="agent.assigned", actor="test", at=NOW, data={}
            )
            await session.flush()
            # The outbox row is written in the event's own transaction...
            count = select(func.count()).select_from(WebhookDelivery)
            assert await session.scalar(count) == 1
            raise RuntimeError("roll back")
    # ... so it goes with it.
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    (committed,) = await make_events(api, 1)
    await until_attempts(api, ep["id"], 1)
    await asyncio.sleep(0.3)
    assert [d.id for d in receiver.deliveries] == [committed]


async def test_an_address_that_turned_inward_is_refused_at_send_time(
    api: Api, receiver: Receiver, worker: Worker, sql: Any
) -> None:
    ep = await create_endpoint(api, receiver.url("/a"))
    # As if its name now resolved to a private address (the URL was fine when saved).
    await sql("UPDATE webhook_endpoint SET url = 'https://10.1.2.3/a' WHERE id = :id", id=ep["id"])
    await make_events(api, 1)
    (attempt,) = await until_attempts(api, ep["id"], 1)
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("refused:") and "10.1.2.3" in attempt["error"]
    assert attempt["next_attempt_at"] is not None
    assert receiver.deliveries == []


async def test_redeliver_queues_the_event_again(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    ep = await create_endpoint(api, receiver.url("/a"))
    (event_id,) = await make_events(api, 1)
    await receiver.until(1)
    r = await api.client.post(
        f"/internal/v1/webhooks/events/{event_id}/redeliver", headers=api.as_service()
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"event_id": event_id, "queued": 1}
    got = await receiver.until(2)
    assert got[0].id == got[1].id == event_id and got[0].body == got[1].body
    log = await until_attempts(api, ep["id"], 2)
    assert [a["event_id"] for a in log] == [event_id, event_id]
