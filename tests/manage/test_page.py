"""SPEC §9: the Manage Seats page, tried as the primary admin of the seed's help article would.

Each test asserts what a person reads (text, roles, accessible names), screenshots each state
into its temporary folder, and (through the ``manage`` fixture) that the browser logged no
error and asked nothing of any other host.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Locator, Page, Route, expect

from tests.conftest import NOW, Api
from tests.manage.conftest import Manage, billing_run

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)


pytestmark = pytest.mark.server


def slider(page: Page) -> Locator:
    return page.get_by_role("slider", name="Seats", exact=True)


def fact(page: Page, label: str) -> Locator:
    """The value of one fact of the plan (``Seats``, ``Status``...)."""
    return (
        page.locator("#plan dl > div")
        .filter(has=page.locator("dt", has_text=re.compile(f"^{label}$")))
        .locator("dd")
    )


async def move_slider(page: Page, key: str, times: int) -> None:
    """Move the slider with the keyboard, as a person without a mouse does."""
    await slider(page).focus()
    for _ in range(times):
        await page.keyboard.press(key)


async def expect_price(page: Page, monthly: str, due: str) -> None:
    await expect(page.locator("#price-monthly")).to_have_text(monthly)
    await expect(page.locator("#price-due")).to_have_text(due)


async def test_trial_agents_slider_and_purchase(manage: Manage, api: Api) -> None:
    page = manage.page
    await manage.open()
    await expect(page.get_by_role("heading", name="Manage Seats", level=1)).to_be_visible()
    await expect(page.get_by_text("You have no Conversations seats yet")).to_be_visible()
    await expect(fact(page, "Status")).to_have_text("No plan")
    await expect(page.get_by_role("button", name="Buy now")).to_be_visible()
    await expect(page.get_by_role("slider")).to_be_hidden()
    await manage.shot("no-plan")

    await page.get_by_role("button", name="Start free trial").click()
    await expect(
        page.get_by_role("status").filter(has_text="free trial has started")
    ).to_be_visible()
    await expect(fact(page, "Status")).to_have_text("Free trial")
    await expect(fact(page, "Trial ends")).to_have_text("December 5, 2026")
    await expect(
        page.get_by_text("Your free trial of 20 seats ends on December 5, 2026.")
    ).to_be_visible()
    await expect(page.get_by_role("button", name="Start free trial")).to_be_hidden()

    for name in ("Bob", "Carol"):
        switch = page.get_by_role("switch", name=name)
        await expect(switch).to_have_attribute("aria-checked", "false")
        await switch.click()
        await expect(page.get_by_role("switch", name=name)).to_have_attribute(
            "aria-checked", "true"
        )
    await expect(fact(page, "Assigned")).to_have_text("2")
    await expect(fact(page, "Available")).to_have_text("18")
    await expect(page.get_by_role("switch", name="Alice")).to_have_attribute(
        "aria-checked", "false"
    )
    await manage.shot("trialing-two-agents")

    await page.get_by_role("button", name="Purchase").click()
    await expect(slider(page)).to_be_focused()
    await expect(slider(page)).to_have_value("20")
    # 20 seats out of a trial: all charged, 10 of the period's 30 days left (SPEC §3).
    await expect_price(page, "$380.00", "$126.67")
    await move_slider(page, "ArrowRight", 5)
    await expect(slider(page)).to_have_value("25")
    await expect(slider(page)).to_have_attribute("aria-valuetext", "25 seats")
    await expect_price(page, "$475.00", "$158.33")  # round(25 * 1900 * 10 / 30) = 15833
    await manage.fits(320)
    await manage.shot("slider-25-at-320px")
    await page.set_viewport_size({"width": 1024, "height": 900})

    await page.get_by_role("button", name="Update").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_text("You are buying 25 seats.")).to_be_visible()
    await expect(dialog.locator("#confirm-monthly")).to_have_text("$475.00")
    await expect(dialog.locator("#confirm-due")).to_have_text("$158.33")
    await expect(dialog.get_by_text("Total cost per month", exact=True)).to_be_visible()
    await expect(dialog.get_by_text("Charge now", exact=True)).to_be_visible()
    await manage.shot("confirm-dialog")

    async with page.expect_request(re.compile(r"/purchases$")) as purchase_request:
        await dialog.get_by_role("button", name="Confirm seat purchase").click()
    sent = await purchase_request.value
    assert sent.headers.get("idempotency-key")
    body = json.loads(sent.post_data or "{}")
    assert body["seats"] == 25 and body["quote_id"].startswith("quo_")

    await expect(dialog).to_be_hidden()
    done = page.get_by_role("status").filter(has_text="Done: you now have 25 seats.")
    await expect(done).to_contain_text("$158.33 was charged.")
    await expect(fact(page, "Status")).to_have_text("Active")
    await expect(fact(page, "Seats")).to_have_text("25")
    await expect(fact(page, "Cost per month")).to_have_text("$475.00")
    await expect(fact(page, "Next renewal")).to_have_text("December 1, 2026")
    invoice = page.locator("#invoice-list li").first
    await expect(invoice).to_contain_text("Purchase")
    await expect(invoice).to_contain_text("November 21, 2026, 12:00 UTC")
    await expect(invoice).to_contain_text("$158.33")
    await expect(invoice).to_contain_text("Paid")
    await manage.fits(320)
    await manage.shot("active-25-seats")

    # What the page showed is what the service holds.
    summary = await api.summary()
    assert (summary["status"], summary["seats"], summary["assigned"]) == ("active", 25, 2)
    (paid,) = (await api.call("GET", "acme", "/invoices", user="alice")).json()["data"]
    assert (paid["total"], paid["status"]) == (15833, "paid")


async def test_removal_below_assigned_names_how_many_to_unassign(manage: Manage, api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    for user_id in ("alice", "bob", "carol"):
        assert (await api.assign(user_id)).status_code == 201
    page = manage.page
    await manage.open()
    await expect(fact(page, "Seats")).to_have_text("5")
    await expect(slider(page)).to_have_value("5")
    await expect(page.get_by_role("button", name="Update")).to_be_disabled()

    await move_slider(page, "ArrowLeft", 3)
    await expect(slider(page)).to_have_value("2")
    # Refused before any dialog: Update waits, and the page says how many to unassign.
    blocked = page.locator("#seats-blocked")
    await expect(blocked).to_have_text(
        "3 agents are assigned: unassign 1 agent before going down to 2 seats. "
        "Go to the agents list"
    )
    await expect_price(page, "$38.00", "$0.00")
    await expect(page.get_by_role("button", name="Update")).to_be_disabled()
    await expect(fact(page, "Seats")).to_have_text("5")
    await manage.shot("seats-assigned")
    await blocked.get_by_role("link", name="Go to the agents list").click()
    await expect(page.locator("#agents")).to_be_focused()
    dialog = page.get_by_role("dialog")

    # Unassign one, and the same removal goes through.
    await page.get_by_role("switch", name="Carol").click()
    await expect(page.get_by_role("switch", name="Carol")).to_have_attribute(
        "aria-checked", "false"
    )
    await expect(slider(page)).to_have_value("2")  # the admin's choice is kept meanwhile
    await expect(page.locator("#price-note")).to_contain_text("no refund")
    await page.get_by_role("button", name="Update").click()
    await expect(dialog.get_by_text("From 5 seats to 2 seats.")).to_be_visible()
    await expect(dialog.locator("#confirm-due")).to_have_text("$0.00")
    await dialog.get_by_role("radio", name="Now").check()  # the period's end is the default
    await dialog.get_by_role("button", name="Confirm seat purchase").click()
    await expect(
        page.get_by_role("status").filter(has_text="Done: you now have 2 seats.")
    ).to_be_visible()
    await expect(fact(page, "Seats")).to_have_text("2")
    await manage.shot("removed-to-2")
    assert (await api.summary())["seats"] == 2


async def test_declined_card_is_shown_in_words(manage: Manage, api: Api) -> None:
    assert (
        await api.put_account("acme", payment_method="pm_decline_insufficient")
    ).status_code == 200
    page = manage.page
    await manage.open()
    await page.get_by_role("button", name="Buy now").click()
    await expect(slider(page)).to_have_value("1")
    await move_slider(page, "ArrowRight", 4)
    await expect_price(page, "$95.00", "$31.67")  # round(5 * 1900 * 10 / 30) = 3167
    await page.get_by_role("button", name="Update").click()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm seat purchase").click()
    alert = page.get_by_role("alert").filter(has_text="Your card was declined")
    await expect(alert).to_contain_text("Nothing was charged and your seats did not change.")
    await expect(fact(page, "Status")).to_have_text("No plan")
    await expect(page.locator("#invoice-list li").first).to_contain_text("Declined")
    await manage.shot("declined")
    assert (await api.summary())["seats"] == 0


async def test_past_due_banner_and_pay_now(manage: Manage, api: Api) -> None:
    assert (await api.buy(3)).status_code == 201
    assert (await api.put_account("acme", payment_method="pm_decline_expired")).status_code == 200
    await api.set_clock(DEC_1)
    report = await billing_run(api)
    assert report["renewals_declined"] == 1, report
    assert (await api.put_account("acme", payment_method="pm_card_visa")).status_code == 200

    page = manage.page
    await manage.open()
    banner = page.get_by_role("region", name="Payment failed")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text(
        "The renewal of $57.00 due since December 1, 2026 was declined"
    )
    await expect(fact(page, "Status")).to_have_text("Past due")
    await manage.fits(320)
    await manage.shot("past-due")
    await page.set_viewport_size({"width": 1024, "height": 900})

    # Buying is paused until it is paid, and the page says so.
    await expect(slider(page)).to_be_disabled()
    await expect(page.get_by_role("button", name="Update")).to_be_disabled()
    await expect(page.locator("#seats-paused")).to_have_text(
        "Buying and removing seats is paused until the unpaid renewal is paid (Pay now, above)."
    )

    await banner.get_by_role("button", name="Pay now").click()
    await expect(
        page.get_by_role("status").filter(has_text="Thank you: $57.00 was paid.")
    ).to_be_visible()
    await expect(banner).to_be_hidden()
    await expect(fact(page, "Status")).to_have_text("Active")
    await expect(fact(page, "Next renewal")).to_have_text("January 1, 2027")
    await manage.shot("paid")
    summary = await api.summary()
    assert (summary["status"], summary["outstanding_invoice"]) == ("active", None)


async def test_retry_after_a_network_error_reuses_the_idempotency_key(
    manage: Manage, api: Api
) -> None:
    assert (await api.start_trial()).status_code == 201
    page = manage.page
    # The aborted request below is logged by the browser as a failed load: expected here.
    manage.watch.allowed_console.append(re.compile(r"net::ERR_CONNECTION_RESET"))
    sent: list[tuple[str | None, str | None]] = []

    async def lose_the_first_answer(route: Route) -> None:
        sent.append((route.request.headers.get("idempotency-key"), route.request.post_data))
        if len(sent) == 1:
            await route.fetch()  # the service charges and answers...
            await route.abort("connectionreset")  # ...and the answer is lost on the way
        else:
            await route.continue_()

    await page.route(re.compile(r"/purchases$"), lose_the_first_answer)
    await manage.open()
    await page.get_by_role("button", name="Purchase").click()
    await move_slider(page, "ArrowRight", 5)
    await expect_price(page, "$475.00", "$158.33")
    await page.get_by_role("button", name="Update").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_role("button", name="Confirm seat purchase").click()
    await expect(dialog.get_by_role("alert")).to_have_text(
        "We couldn't reach the seats service. Check your connection and try again."
    )
    await expect(dialog.get_by_text("you will not be charged twice")).to_be_visible()
    await manage.shot("network-error")

    async with page.expect_response(re.compile(r"/purchases$")) as answer:
        await dialog.get_by_role("button", name="Confirm seat purchase").click()
    replay = await answer.value
    assert replay.status == 201
    assert await replay.header_value("idempotent-replayed") == "true"
    await expect(fact(page, "Seats")).to_have_text("25")
    assert len(sent) == 2 and sent[0] == sent[1] and sent[0][0]  # same key, same body

    invoices = (await api.call("GET", "acme", "/invoices", user="alice")).json()["data"]
    assert [(i["kind"], i["status"], i["total"]) for i in invoices] == [("purchase", "paid", 15833)]


async def test_trial_expired_keeps_agents_inactive(manage: Manage, api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("bob")).status_code == 201
    await api.set_clock(NOW + timedelta(days=15))
    await billing_run(api)
    page = manage.page
    await manage.open()
    await expect(fact(page, "Status")).to_have_text("Trial ended")
    await expect(page.locator("#plan-text")).to_have_text(
        "Your free trial ended on December 5, 2026. Your agents (1) are kept but inactive "
        "until you purchase seats."
    )
    await expect(page.get_by_role("button", name="Purchase")).to_be_visible()
    await expect(page.get_by_role("switch", name="Bob")).to_have_attribute("aria-checked", "true")
    await expect(page.get_by_text("Agents are kept but can't use the inbox")).to_be_visible()
    await manage.shot("trial-expired")
    await page.get_by_role("button", name="Purchase").click()
    await expect(slider(page)).to_have_value("1")  # enough for the one kept agent


async def test_admins_and_users_see_what_they_may_do(manage: Manage, api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    page = manage.page
    await manage.open(user="bob")  # an admin: assigns, does not buy
    await expect(fact(page, "Status")).to_have_text("Free trial")
    await expect(page.locator("#role-note")).to_contain_text(
        "Only Alice, the primary account admin, can start a trial, buy or remove seats"
    )
    await expect(page.get_by_role("button", name="Purchase")).to_be_hidden()
    await page.get_by_role("switch", name="Carol").click()
    await expect(page.get_by_role("switch", name="Carol")).to_have_attribute("aria-checked", "true")
    await manage.shot("admin")

    await page.evaluate("sessionStorage.clear()")
    await manage.open(user="carol")  # a user: reads the plan only
    await expect(fact(page, "Assigned")).to_have_text("1")
    await expect(page.get_by_role("switch")).to_have_count(0)
    await expect(page.get_by_role("heading", name="Agents")).to_be_hidden()
    await manage.shot("user")

    await page.evaluate("sessionStorage.clear()")
    await page.goto(f"{manage.server.url}/manage")
    await expect(page.get_by_role("heading", name="Sign in to manage seats")).to_be_visible()


async def test_the_policy_blocks_other_hosts_and_the_watch_sees_errors(manage: Manage) -> None:
    """The checks every test ends with can fail: a console error is caught, and the browser
    itself refuses a request to another origin under the page's Content-Security-Policy."""
    page = manage.page
    await manage.open()
    await expect(page.get_by_role("heading", name="Manage Seats")).to_be_visible()
    await page.evaluate("console.error('seen by the watch')")
    blocked = await page.evaluate(
        "fetch('http://127.0.0.2:9/elsewhere').then(() => 'sent', () => 'refused')"
    )
    assert blocked == "refused"
    errors = manage.watch.console_errors
    assert "seen by the watch" in errors
    assert any("Content Security Policy" in e for e in errors), errors
    errors.clear()  # expected here; anything else still fails the test
