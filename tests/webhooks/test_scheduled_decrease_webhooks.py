"""R15's events are webhooks (SPEC §8): delivered, signed, with their documented payloads."""

from __future__ import annotations

from datetime import UTC, datetime

from app.webhooks.worker import Worker
from tests.conftest import Api
from tests.seats.helpers import billing_run
from tests.webhooks.conftest import create_endpoint
from tests.webhooks.receiver import Receiver

TYPES = ["seats.decrease_scheduled", "seats.decrease_canceled", "seats.decreased"]
AT = "2026-12-01T00:00:00Z"


async def test_r15_events_decrease_scheduled_canceled_and_decreased_are_webhooks(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    ep = await create_endpoint(api, receiver.url("/r15"), event_types=TYPES)
    receiver.trust(ep["secret"])
    assert (await api.buy(25)).status_code == 201
    for seats in (10, 12):
        body = {"seats": seats, "effective": "period_end"}
        r = await api.call("POST", "acme", "/removals", user="alice", json=body)
        assert r.status_code == 200, r.text
    assert (await api.call("DELETE", "acme", "/scheduled-change", user="alice")).status_code == 204
    body = {"seats": 8, "effective": "period_end"}
    assert (await api.call("POST", "acme", "/removals", user="alice", json=body)).status_code == 200
    await api.set_clock(datetime(2026, 12, 1, tzinfo=UTC))
    await billing_run(api)
    got = await receiver.until(5, "/r15")
    assert all(d.verified_by == {ep["secret"]} for d in got)
    assert [(d.json()["type"], d.json()["data"]) for d in got] == [
        (
            "seats.decrease_scheduled",
            {"seats": 25, "scheduled_seats": 10, "effective_at": AT, "replaced_seats": None},
        ),
        (
            "seats.decrease_scheduled",
            {"seats": 25, "scheduled_seats": 12, "effective_at": AT, "replaced_seats": 10},
        ),
        (
            "seats.decrease_canceled",
            {"seats": 25, "scheduled_seats": 12, "effective_at": AT, "reason": "canceled"},
        ),
        (
            "seats.decrease_scheduled",
            {"seats": 25, "scheduled_seats": 8, "effective_at": AT, "replaced_seats": None},
        ),
        ("seats.decreased", {"seats_before": 25, "seats_after": 8, "effective_at": AT}),
    ]
