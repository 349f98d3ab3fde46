"""R18 "Every plan renews": a plan whose renewal cannot be invoiced (here its currency was
dropped from ``SEATS_PRICES``) is reported by every billing run as needing an operator and is
past due from its period's end: its agents keep access through the dunning window, then the
plan is canceled. Nobody keeps seats for free.

Driven from the outside on both databases, as ``test_dunning.py``: the API in process, the
real `seats billing run` process.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from app.main import create_app
from tests.billing_run.conftest import RunBilling, assert_verify_passes
from tests.conftest import Api, make_settings
from tests.renewals.conftest import agent, events, invoices

PERIOD_END = datetime(2026, 12, 1, tzinfo=UTC)  # acme's first renewal (monthly, the 1st)
# acme's USD is no longer priced: an operator replaced it with EUR.
WITHOUT_USD = {"SEATS_PRICES": '{"EUR": 1700}', "SEATS_CURRENCY": "EUR"}


async def run_without_usd(api: Api, billing_run: RunBilling, at: datetime) -> dict[str, object]:
    """The billing run at ``at`` with USD unpriced: it needs an operator; its report."""
    await api.set_clock(at)
    result = billing_run(**WITHOUT_USD)
    assert result.returncode == 1, result.describe()
    report = result.report
    assert report is not None, result.describe()
    assert report["needs_operator"] is True
    assert "acme: unsupported_currency" in report["errors"], report
    return report


async def test_r18_a_renewal_that_cannot_be_invoiced_is_past_due_from_the_period_end(
    billing_api: Api, billing_run: RunBilling, database_url: str
) -> None:
    api = billing_api
    assert (await api.buy(5)).status_code == 201
    assert (await api.assign("bob")).status_code == 201

    # The period ended and its renewal cannot be invoiced: past due, the agents keep working.
    for at in (PERIOD_END + timedelta(hours=12), PERIOD_END + timedelta(days=13, hours=23)):
        await run_without_usd(api, billing_run, at)
        summary = await api.summary()
        assert summary["status"] == "past_due", (at, summary)
        assert (await agent(api, "bob"))["active"] is True
    assert await invoices(api, kind="renewal") == []
    (past_due,) = await events(api, type="plan.past_due")
    assert past_due["actor"] == "system:billing"
    assert past_due["data"]["reason"] == "unsupported_currency"

    # The dunning window (14 days) runs from the period's end: canceled, no access.
    await run_without_usd(api, billing_run, PERIOD_END + timedelta(days=14))
    summary = await api.summary()
    assert summary["status"] == "canceled", summary
    assert (summary["seats"], summary["assigned"]) == (0, 1)
    assert (await agent(api, "bob"))["active"] is False
    (canceled,) = await events(api, type="plan.canceled")
    assert canceled["actor"] == "system:billing"
    assert await invoices(api, kind="renewal") == []
    assert_verify_passes(database_url)


async def test_r18_the_plan_summary_answers_when_its_currency_has_no_price(
    billing_api: Api, billing_run: RunBilling, database_url: str
) -> None:
    api = billing_api
    assert (await api.buy(5)).status_code == 201
    await run_without_usd(api, billing_run, PERIOD_END + timedelta(hours=12))

    # A process started with the narrower prices (the billing run's) still shows the plan.
    settings = make_settings(database_url, prices={"EUR": 1700}, currency="EUR")
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.get(api.url("acme"), headers=api.as_user("acme", "alice"))
    finally:
        await app.state.gateway.aclose()
        await app.state.db.dispose()
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["seats"], body["currency"]) == ("past_due", 5, "USD")
    assert (body["unit_price"], body["monthly_total"], body["cycle_total"]) == (None, None, None)
