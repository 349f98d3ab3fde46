"""SPEC §10: every invoice is numbered when made, gapless per account and never reused, and
its lines explain themselves (seats before -> after, unit price, days, period, amount) in one
description format, whatever made it (purchase or renewal, paid or declined)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.ledger.invoices import account_part
from tests.conftest import Api
from tests.seats.helpers import billing_run, invoices


def line_of(invoice: dict[str, Any]) -> dict[str, Any]:
    [line] = invoice["lines"]
    return line


async def test_every_invoice_is_numbered_gapless_per_account_a_declined_one_included(
    api: Api,
) -> None:
    acme, globex = f"INV-{account_part('acme')}", f"INV-{account_part('globex')}"
    assert acme != globex
    assert (await api.buy(10)).status_code == 201
    await api.put_account("acme", payment_method="pm_decline_card")
    assert (await api.buy(12)).status_code == 402
    await api.put_account("acme", payment_method="pm_card_visa")
    r = await api.buy(12)
    assert r.status_code == 201, r.text
    assert r.json()["invoice"]["number"] == f"{acme}-0003"
    await api.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    assert (await billing_run(api))["renewals_invoiced"] == 1
    assert (await api.buy(2, account_id="globex", user="gina")).status_code == 201

    numbers = [i["number"] for i in reversed(await invoices(api))]
    assert numbers == [f"{acme}-0001", f"{acme}-0002", f"{acme}-0003", f"{acme}-0004"]
    assert [i["number"] for i in await invoices(api, "globex")] == [f"{globex}-0001"]
    [renewal, *_] = await invoices(api)
    r = await api.call("GET", "acme", f"/invoices/{renewal['id']}")
    assert r.json()["number"] == f"{acme}-0004"


async def test_lines_say_seats_before_and_after_days_and_period_in_one_format(api: Api) -> None:
    assert (await api.buy(10)).status_code == 201
    await api.put_account("acme", payment_method="pm_decline_card")
    assert (await api.buy(12)).status_code == 402
    await api.put_account("acme", payment_method="pm_card_visa")
    await api.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    await billing_run(api)
    renewal, declined, bought = (line_of(i) for i in await invoices(api))

    assert bought == {
        "description": "Conversations seats 0 → 10, monthly, 10 of 30 days, "
        "November 21, 2026 \u2013 December 1, 2026",
        "seats_before": 0,
        "seats_after": 10,
        "quantity": 10,
        "unit_price": 1900,
        "days": 10,
        "days_in_period": 30,
        "period_start": "2026-11-21",
        "period_end": "2026-12-01",
        "amount": 6333,  # round(10 * 1900 * 10 / 30)
    }
    # A declined attempt at 12 seats says 10 -> 12, not "2 seats".
    assert declined["description"] == (
        "Conversations seats 10 → 12, monthly, 10 of 30 days, "
        "November 21, 2026 \u2013 December 1, 2026"
    )
    assert (declined["seats_before"], declined["seats_after"], declined["quantity"]) == (10, 12, 2)
    assert declined["amount"] == 1267  # round(2 * 1900 * 10 / 30)
    # A whole period: no days.
    assert renewal == {
        "description": "Conversations seats 10, monthly, December 1, 2026 \u2013 January 1, 2027",
        "seats_before": 10,
        "seats_after": 10,
        "quantity": 10,
        "unit_price": 1900,
        "days": None,
        "days_in_period": None,
        "period_start": "2026-12-01",
        "period_end": "2027-01-01",
        "amount": 19000,
    }


async def test_a_bridge_renewal_line_shows_its_days_of_the_new_period(api: Api) -> None:
    """SPEC §3's example: anchor moved to the 15th, the renewal bills 14 of 30 days."""
    assert (await api.buy(10)).status_code == 201
    await api.put_account("acme", billing_anchor="2026-11-15")
    await api.set_clock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    await billing_run(api)
    renewal = line_of((await invoices(api))[0])
    assert renewal["description"] == (
        "Conversations seats 10, monthly, 14 of 30 days, December 1, 2026 \u2013 December 15, 2026"
    )
    assert (renewal["days"], renewal["days_in_period"], renewal["amount"]) == (14, 30, 8867)
