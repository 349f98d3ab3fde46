"""R16, seat alerts: ``seats.threshold_reached`` when assigned seats first reach each of
``SEATS_ALERT_THRESHOLDS`` (percent of the total, default [80, 100]), once per crossing and
re-armed below; ``seats.exhausted`` when an assignment is refused for want of an empty seat,
at most once per account per hour; the summary's ``alerts``, the facts the page's banners show.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from app.config import Settings
from tests.conftest import NOW, SECRET, Api, problem
from tests.live import LiveServer
from tests.seats.helpers import billing_run, events


async def of_type(api: Api, type: str, account_id: str = "acme") -> list[dict[str, Any]]:
    """The account's events of ``type``, oldest first."""
    return [e for e in reversed(await events(api, account_id)) if e["type"] == type]


async def thresholds(api: Api) -> list[int]:
    return [e["data"]["threshold"] for e in await of_type(api, "seats.threshold_reached")]


async def assign_all(api: Api, users: list[str]) -> None:
    for user_id in users:
        assert (await api.assign(user_id)).status_code == 201


async def test_r16_threshold_reached_when_assigned_seats_first_reach_each_threshold(
    api: Api,
) -> None:
    assert (await api.start_trial()).status_code == 201  # 20 seats
    users = await api.add_users(20)
    await assign_all(api, users[:15])  # 75 %
    assert await thresholds(api) == []

    assert (await api.assign(users[15], user="bob")).status_code == 201  # 16 of 20: 80 %
    [reached] = await of_type(api, "seats.threshold_reached")
    assert reached["data"] == {"threshold": 80, "assigned": 16, "seats": 20}
    assert reached["actor"] == "user:bob"

    await assign_all(api, users[16:])  # 20 of 20
    assert await thresholds(api) == [80, 100]
    last = (await of_type(api, "seats.threshold_reached"))[-1]
    assert last["data"] == {"threshold": 100, "assigned": 20, "seats": 20}


async def test_r16_threshold_reached_once_per_crossing(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    users = await api.add_users(10)
    await assign_all(api, users[:8])  # 80 %
    await assign_all(api, users[8:9])  # 90 %: still above 80, nothing new
    assert await thresholds(api) == [80]


async def test_r16_threshold_re_armed_when_usage_falls_below_it_again(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    users = await api.add_users(10)
    await assign_all(api, users[:8])  # 80 %
    assert (await api.unassign(users[7])).status_code == 204  # 70 %: re-armed
    assert await thresholds(api) == [80]
    assert (await api.assign(users[7])).status_code == 201  # 80 % again: a new crossing
    assert await thresholds(api) == [80, 80]


async def test_r16_a_lower_total_that_reaches_a_threshold_is_a_crossing(api: Api) -> None:
    """Decision: the admins who assign agents learn that the account is full whoever filled
    it; a removal that leaves 10 of 10 seats assigned reaches 100 %."""
    assert (await api.buy(12)).status_code == 201
    users = await api.add_users(10)
    await assign_all(api, users)  # 10 of 12: 83 %
    assert await thresholds(api) == [80]
    assert (await api.remove(10)).status_code == 200
    last = (await of_type(api, "seats.threshold_reached"))[-1]
    assert last["data"] == {"threshold": 100, "assigned": 10, "seats": 10}
    assert last["actor"] == "user:alice"
    # A purchase lowers usage (re-arms), and nothing is sent for it.
    assert (await api.buy(20)).status_code == 201
    assert await thresholds(api) == [80, 100]


async def test_r16_a_change_that_jumps_several_thresholds_crosses_each(api: Api) -> None:
    assert (await api.buy(4)).status_code == 201
    users = await api.add_users(4)
    await assign_all(api, users[:3])  # 75 %
    await assign_all(api, users[3:])  # 100 %: past 80 and 100 at once
    assert await thresholds(api) == [80, 100]


@pytest.mark.settings(alert_thresholds=[50])
async def test_r16_alert_thresholds_are_percent_of_the_total_from_the_setting(api: Api) -> None:
    assert (await api.buy(4)).status_code == 201
    users = await api.add_users(4)
    await assign_all(api, users[:1])
    assert await thresholds(api) == []
    await assign_all(api, users[1:])  # 50 %, then 75 % and 100 %: only 50 is configured
    assert await thresholds(api) == [50]


def test_r16_alert_thresholds_default_to_80_and_100() -> None:
    settings = Settings(jwt_secret=SECRET)
    assert settings.alert_thresholds == [80, 100]
    assert Settings(jwt_secret=SECRET, alert_thresholds="100, 50").alert_thresholds == [50, 100]


@pytest.mark.parametrize("bad", ["[80, 150]", "[0]", "eighty", "80,80", "[80.5]", '{"a": 1}'])
def test_r16_a_bad_alert_thresholds_setting_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="SEATS_ALERT_THRESHOLDS"):
        Settings(jwt_secret=SECRET, alert_thresholds=bad)


def test_r16_serve_refuses_to_start_with_bad_alert_thresholds(database_url: str) -> None:
    server = LiveServer(database_url, workers=1, SEATS_ALERT_THRESHOLDS="[80, 120]")
    with pytest.raises(RuntimeError, match="server exited with") as exited:
        server.start()
    server.stop()
    assert "SEATS_ALERT_THRESHOLDS" in str(exited.value)


async def test_r16_seats_exhausted_when_an_assignment_is_refused_for_want_of_an_empty_seat(
    api: Api,
) -> None:
    assert (await api.buy(2)).status_code == 201
    users = await api.add_users(3)
    await assign_all(api, users[:2])
    problem(await api.assign(users[2], user="bob"), 409, "no_empty_seat")
    [exhausted] = await of_type(api, "seats.exhausted")
    assert exhausted["actor"] == "user:bob"
    assert exhausted["data"] == {"user_id": users[2], "assigned": 2, "seats": 2}
    # The refusal changed nothing else.
    summary = await api.summary()
    assert (summary["seats"], summary["assigned"]) == (2, 2)


async def test_r16_seats_exhausted_at_most_once_per_account_per_hour(api: Api) -> None:
    assert (await api.buy(1)).status_code == 201
    users = await api.add_users(3)
    await assign_all(api, users[:1])
    for user_id in users[1:]:
        problem(await api.assign(user_id), 409, "no_empty_seat")
    await api.set_clock(NOW + timedelta(minutes=59))
    problem(await api.assign(users[1]), 409, "no_empty_seat")
    assert len(await of_type(api, "seats.exhausted")) == 1
    await api.set_clock(NOW + timedelta(hours=1))
    problem(await api.assign(users[1]), 409, "no_empty_seat")
    assert [e["at"] for e in await of_type(api, "seats.exhausted")] == [
        "2026-11-21T12:00:00Z",
        "2026-11-21T13:00:00Z",
    ]


async def test_r16_seats_exhausted_is_only_for_want_of_an_empty_seat(api: Api) -> None:
    problem(await api.assign("carol"), 409, "no_active_plan")
    assert (await api.buy(1)).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    assert (await api.assign("carol")).status_code == 200  # already an agent: no refusal
    problem(await api.assign("nobody"), 404, "user_not_found")
    assert await of_type(api, "seats.exhausted") == []


@pytest.mark.settings(webhook_allow_hosts="127.0.0.1")
async def test_r16_alerts_are_events_hence_webhooks(api: Api, sql: Callable[..., Any]) -> None:
    r = await api.client.post(
        "/internal/v1/webhooks/endpoints",
        json={
            "url": "http://127.0.0.1:9/alerts",
            "event_types": ["seats.threshold_reached", "seats.exhausted"],
        },
        headers=api.as_service(),
    )
    assert r.status_code == 201, r.text
    assert (await api.buy(1)).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    problem(await api.assign("bob"), 409, "no_empty_seat")
    rows = await sql(
        "SELECT d.event_type, d.body FROM webhook_delivery d JOIN event e ON e.id = d.event_id "
        "ORDER BY d.id"
    )
    assert [row[0] for row in rows] == [
        "seats.threshold_reached",
        "seats.threshold_reached",
        "seats.exhausted",
    ]
    assert '"threshold":80' in rows[0][1] and '"threshold":100' in rows[1][1]


async def alerts_of(api: Api) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = (await api.summary())["alerts"]
    return alerts


async def test_r16_the_summary_lists_the_alerts_in_force(api: Api) -> None:
    assert await alerts_of(api) == []
    assert (await api.buy(5)).status_code == 201
    assert await alerts_of(api) == []
    users = await api.add_users(5)
    await assign_all(api, users[:4])  # 80 %
    assert await alerts_of(api) == [
        {"type": "seats.threshold_reached", "threshold": 80, "at": None, "amount": None}
    ]
    await assign_all(api, users[4:])  # full: the highest threshold, and no empty seat
    assert [(a["type"], a["threshold"]) for a in await alerts_of(api)] == [
        ("seats.threshold_reached", 100),
        ("seats.exhausted", None),
    ]
    assert (await api.unassign(users[0])).status_code == 204
    assert [a["type"] for a in await alerts_of(api)] == ["seats.threshold_reached"]


async def test_r16_the_summary_says_a_trial_is_ending_within_3_days(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201  # ends NOW + 14 days
    ends_at = NOW + timedelta(days=14)
    await api.set_clock(ends_at - timedelta(days=3, seconds=1))
    assert await alerts_of(api) == []
    await api.set_clock(ends_at - timedelta(days=3))
    assert await alerts_of(api) == [
        {"type": "trial.ending", "at": "2026-12-05T12:00:00Z", "threshold": None, "amount": None}
    ]
    await api.set_clock(ends_at)  # ended (R10): nothing is ending any more
    assert await alerts_of(api) == []


async def test_r16_the_summary_says_a_renewal_is_upcoming_within_7_days_with_its_amount(
    api: Api,
) -> None:
    assert (await api.buy(10)).status_code == 201  # monthly, renews 2026-12-01
    assert await alerts_of(api) == []
    await api.set_clock(datetime(2026, 11, 24, tzinfo=UTC))
    assert await alerts_of(api) == [
        {
            "type": "renewal.upcoming",
            "at": "2026-12-01T00:00:00Z",
            "amount": 10 * 1900,
            "threshold": None,
        }
    ]
    await api.set_clock(datetime(2026, 12, 1, tzinfo=UTC))
    await billing_run(api)  # renewed: the next one is a month away
    assert await alerts_of(api) == []
