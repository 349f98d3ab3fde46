"""R16, reminders: ``trial.ending`` 3 days before a trial ends and ``renewal.upcoming`` 7 days
before a renewal with its expected amount, sent by the billing run, once each.

The account ``acme`` is monthly, anchored on the 1st: a purchase at the fixture's time
(2026-11-21 12:00) pays through 2026-12-01, renewed at 2026-12-01 00:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import NOW, Api
from tests.renewals.conftest import PRICE, events, run_billing

TRIAL_ENDS = NOW + timedelta(days=14)  # SEATS_TRIAL_DAYS' default
RENEWS = datetime(2026, 12, 1, tzinfo=UTC)


async def run_at(api: Api, now: datetime) -> dict[str, Any]:
    await api.set_clock(now)
    return await run_billing(api)


async def test_r16_trial_ending_3_days_before_a_trial_ends(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    users = await api.add_users(2)
    for user_id in users:
        assert (await api.assign(user_id)).status_code == 201

    report = await run_at(api, TRIAL_ENDS - timedelta(days=3, seconds=1))
    assert report["trial_reminders_sent"] == 0
    assert await events(api, type="trial.ending") == []

    report = await run_at(api, TRIAL_ENDS - timedelta(days=3))
    assert report["trial_reminders_sent"] == 1
    [ending] = await events(api, type="trial.ending")
    assert ending["actor"] == "system:billing"
    assert ending["at"] == "2026-12-02T12:00:00Z"
    assert ending["data"] == {"ends_at": "2026-12-05T12:00:00+00:00", "seats": 20, "assigned": 2}


async def test_r16_renewal_upcoming_7_days_before_a_renewal_with_its_expected_amount(
    api: Api,
) -> None:
    assert (await api.buy(10)).status_code == 201

    report = await run_at(api, RENEWS - timedelta(days=7, seconds=1))
    assert report["renewal_reminders_sent"] == 0
    assert await events(api, type="renewal.upcoming") == []

    report = await run_at(api, RENEWS - timedelta(days=7))
    assert report["renewal_reminders_sent"] == 1
    [upcoming] = await events(api, type="renewal.upcoming")
    assert upcoming["actor"] == "system:billing"
    assert upcoming["data"] == {
        "renews_at": "2026-12-01T00:00:00+00:00",
        "seats": 10,
        "amount": 10 * PRICE,
        "currency": "USD",
        "billing_cycle": "monthly",
    }
    # The renewal then charges what the reminder said.
    await run_at(api, RENEWS)
    r = await api.call("GET", "acme", "/invoices?status=paid")
    renewal = next(i for i in r.json()["data"] if i["kind"] == "renewal")
    assert renewal["total"] == upcoming["data"]["amount"]


async def test_r16_renewal_upcoming_amount_is_the_renewal_the_run_will_invoice(
    api: Api,
) -> None:
    """An account that moved to yearly is reminded of the renewal the run will invoice: the
    bridge from the old period's end to the yearly schedule's next boundary (R12)."""
    assert (await api.buy(3)).status_code == 201
    assert (await api.put_account("acme", billing_cycle="yearly")).status_code == 200
    await run_at(api, RENEWS - timedelta(days=2))
    [upcoming] = await events(api, type="renewal.upcoming")
    # 2026-12-01 to 2027-11-01: 335 of the 365 days of 2026-11-01 to 2027-11-01.
    assert (upcoming["data"]["billing_cycle"], upcoming["data"]["amount"]) == (
        "yearly",
        (2 * 3 * PRICE * 12 * 335 + 365) // (2 * 365),
    )
    await run_at(api, RENEWS)
    r = await api.call("GET", "acme", "/invoices?status=paid")
    renewal = next(i for i in r.json()["data"] if i["kind"] == "renewal")
    assert renewal["total"] == upcoming["data"]["amount"]


async def test_r16_renewal_upcoming_amount_is_after_any_scheduled_decrease(api: Api) -> None:
    """R16 with R15: a decrease scheduled for the period's end lowers the reminded amount to
    what the renewal will invoice, and the summary's banner says the same."""
    assert (await api.buy(25)).status_code == 201
    body = {"seats": 10, "effective": "period_end"}
    r = await api.call("POST", "acme", "/removals", user="alice", json=body)
    assert r.status_code == 200, r.text
    await run_at(api, RENEWS - timedelta(days=7))
    [upcoming] = await events(api, type="renewal.upcoming")
    assert (upcoming["data"]["seats"], upcoming["data"]["amount"]) == (10, 10 * PRICE)
    alerts = (await api.call("GET", "acme", "")).json()["alerts"]
    assert [a["amount"] for a in alerts if a["type"] == "renewal.upcoming"] == [10 * PRICE]
    await run_at(api, RENEWS)
    r = await api.call("GET", "acme", "/invoices?status=paid")
    renewal = next(i for i in r.json()["data"] if i["kind"] == "renewal")
    assert renewal["total"] == upcoming["data"]["amount"]


async def test_r16_reminders_are_sent_once_each_by_every_later_run(api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    await run_at(api, TRIAL_ENDS - timedelta(days=2))
    await run_at(api, TRIAL_ENDS - timedelta(days=1))
    report = await run_at(api, TRIAL_ENDS - timedelta(seconds=1))
    assert report["trial_reminders_sent"] == 0
    assert len(await events(api, type="trial.ending")) == 1

    # Bought on 2026-12-05, converting the trial: renews 2027-01-01, then 2027-02-01.
    assert (await api.buy(10)).status_code == 201
    first, second = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)
    for now in (first - timedelta(days=6), first - timedelta(days=1), first - timedelta(hours=1)):
        await run_at(api, now)
    assert len(await events(api, type="renewal.upcoming")) == 1
    # The next renewal is a new one: reminded in its turn, once.
    for now in (first, second - timedelta(days=7), second - timedelta(days=3)):
        await run_at(api, now)
    upcoming = await events(api, type="renewal.upcoming")
    assert [e["data"]["renews_at"] for e in upcoming] == [
        "2027-01-01T00:00:00+00:00",
        "2027-02-01T00:00:00+00:00",
    ]


async def test_r16_a_run_that_starts_late_still_sends_each_reminder_once(api: Api) -> None:
    assert (await api.start_trial("acme")).status_code == 201
    assert (await api.buy(4, account_id="globex", user="gina")).status_code == 201
    # globex is yearly, anchored on March 15th: it renews 2027-03-15. acme's trial ends
    # 2026-12-05 12:00. One run, a day before each: past both 3- and 7-day marks.
    await run_at(api, TRIAL_ENDS - timedelta(days=1))
    assert len(await events(api, "acme", type="trial.ending")) == 1
    await run_at(api, datetime(2027, 3, 14, tzinfo=UTC))
    await run_at(api, datetime(2027, 3, 14, 12, tzinfo=UTC))
    [upcoming] = await events(api, "globex", type="renewal.upcoming")
    assert upcoming["data"]["renews_at"] == "2027-03-15T00:00:00+00:00"
    assert upcoming["data"]["amount"] == 4 * PRICE * 12
    # A run after the end sends nothing: the trial has expired, the plan renewed.
    assert len(await events(api, "acme", type="trial.ending")) == 1


async def test_r16_a_plan_created_inside_the_lead_time_is_reminded_at_the_next_run(
    api: Api,
) -> None:
    """Decision: a reminder is owed from its mark until the event; a plan that starts closer
    to it than the lead time is already past its mark, and the next run sends it."""
    # Anchored on the 22nd: a purchase on 2026-11-21 pays through 2026-11-22, a day away.
    assert (await api.put_account("acme", billing_anchor="2026-10-22")).status_code == 200
    assert (await api.buy(5)).status_code == 201
    report = await run_at(api, NOW)
    assert report["renewal_reminders_sent"] == 1
    [upcoming] = await events(api, type="renewal.upcoming")
    assert (upcoming["data"]["renews_at"], upcoming["data"]["amount"]) == (
        "2026-11-22T00:00:00+00:00",
        5 * PRICE,
    )


async def test_r16_no_renewal_reminder_for_a_renewal_that_charges_nothing(
    api: Api,
) -> None:
    assert (await api.buy(2)).status_code == 201
    assert (await api.remove(0)).status_code == 200  # 0 seats: the renewal charges nothing
    await run_at(api, RENEWS - timedelta(days=1))
    assert await events(api, type="renewal.upcoming") == []
