"""SPEC §9, "What an admin needs to trust it": the Manage Seats page in Chromium, state by state.

Each test proves one of the page's promises as a person reads it (text, roles, focus, what is
in view), runs axe-core in every state it reaches (0 violations), and saves that state as
``<state>-1280.png`` and ``<state>-375.png`` into ``$SEATS_PAGE_SHOTS`` (a temporary folder
when unset): one run gives the screenshots of every state.

This module's server offers a 12-seat trial (``SEATS_TRIAL_SEATS``), so that no number the
page shows can come from anywhere but the service.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, Route, expect

from tests.conftest import NOW, Api, shared_database_url
from tests.live import LiveServer
from tests.manage.conftest import Axe, Manage, billing_run
from tests.manage.test_page import DEC_1, fact, slider

pytestmark = pytest.mark.server

TRIAL_SEATS = 12
DECLINE = "pm_decline_generic"
WIDTHS = (1280, 375)
X = "\N{MULTIPLICATION SIGN}"
RAW_CODE = re.compile(r"\(?\b[a-z]+_[a-z_]+\b\)?")  # "(card_declined)", "past_due"...


@pytest.fixture(scope="module")
def module_server(
    migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    url = shared_database_url(migrated_template, tmp_path_factory)
    with LiveServer(
        url,
        workers=1,
        SEATS_LOG_LEVEL="ERROR",
        SEATS_TRIAL_SEATS=str(TRIAL_SEATS),
        SEATS_PRICES='{"USD": 1900, "EUR": 1700}',
    ) as live:
        yield live


class States:
    """Checks and screenshots each state the test reaches."""

    def __init__(self, manage: Manage, axe: Axe, folder: Path) -> None:
        self.manage = manage
        self.axe = axe
        self.folder = folder

    async def open(self, user: str = "alice", account: str = "acme") -> None:
        if self.axe.source:
            # An init script is not subject to the page's Content-Security-Policy.
            await self.manage.page.add_init_script(script=self.axe.source)
        await self.manage.open(user=user, account=account)

    async def capture(self, state: str) -> None:
        page = self.manage.page
        await self.check_axe(state)
        size = page.viewport_size
        for width in WIDTHS:
            await page.set_viewport_size({"width": width, "height": 900})
            await page.screenshot(path=str(self.folder / f"{state}-{width}.png"), full_page=True)
        if size:
            await page.set_viewport_size(size)

    async def check_axe(self, state: str) -> None:
        if not self.axe.source:
            return
        violations = await self.manage.page.evaluate(
            """async () => {
                const result = await axe.run(document, { resultTypes: ["violations"] });
                return result.violations.map((v) =>
                    `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
            }"""
        )
        assert violations == [], f"axe-core in state {state!r}: {violations}"


@pytest.fixture
def states(manage: Manage, axe: Axe, shots_dir: Path) -> States:
    return States(manage, axe, shots_dir)


def dialog(page: Page) -> Locator:
    return page.get_by_role("dialog")


async def type_seats(page: Page, value: str) -> None:
    await page.get_by_role("spinbutton", name="Number of seats").fill(value)


async def in_viewport(page: Page, locator: Locator) -> bool:
    box = await locator.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    return box["y"] >= 0 and box["y"] + box["height"] <= size["height"]


async def no_raw_codes(page: Page) -> None:
    """What a person reads has no gateway or error code in it."""
    text = await page.locator("body").inner_text()
    # The payment method's id is shown on purpose: it names the card the charge goes to.
    codes = [c for c in RAW_CODE.findall(text) if not c.strip("()").startswith("pm_")]
    assert codes == [], codes


def test_axe_core_runs(axe: Axe) -> None:
    """axe-core checks every state below; without node and npm this says why it did not."""
    if not axe.source:
        pytest.skip(axe.missing)
    assert "axe.run" in axe.source or "run:" in axe.source


async def test_the_trial_offer_names_the_seats_the_service_gives(states: States, api: Api) -> None:
    page = states.manage.page
    await states.open()
    await expect(page.locator("#plan-text")).to_have_text(
        f"You have no Conversations seats yet. Start a free trial of {TRIAL_SEATS} seats, "
        "or buy the seats you need now."
    )
    await states.capture("no-plan")


async def test_a_purchase_in_a_trial_is_explained_and_its_result_is_in_view_on_a_phone(
    states: States, api: Api
) -> None:
    assert (await api.start_trial()).status_code == 201
    page = states.manage.page
    await page.set_viewport_size({"width": 375, "height": 700})
    await states.open()
    await expect(fact(page, "Status")).to_have_text("Free trial")
    await states.capture("trialing")
    await page.get_by_role("button", name="Purchase").click()
    await type_seats(page, "15")
    await expect(page.locator("#price-due")).to_have_text("$95.00")  # 15*1900*10/30
    await page.get_by_role("button", name="Update").click()
    breakdown = dialog(page).get_by_role("list", name="How it is priced")
    await expect(breakdown).to_contain_text(
        f"$19.00 per seat per month {X} 15 seats = $285.00 per month."
    )
    await expect(breakdown).to_contain_text(
        f"Charged now: 15 added seats {X} 10 days left of the 30-day period "
        "(to December 1, 2026) = $95.00."
    )
    await expect(breakdown).to_contain_text(
        "The charge goes to the account's payment method pm_card_visa."
    )
    await expect(breakdown).to_contain_text(
        "Buying ends your free trial now (it would have run until December 5, 2026)"
    )
    await states.capture("purchase-dialog-in-trial")

    await dialog(page).get_by_role("button", name="Confirm seat purchase").click()
    await expect(dialog(page)).to_be_hidden()
    result = page.get_by_role("status").filter(has_text="Done: you now have 15 seats.")
    await expect(result).to_contain_text("$95.00 was charged.")
    await expect(result).to_be_focused()
    assert await in_viewport(page, result), "the result is out of view on a phone"
    await states.capture("purchase-done")


async def test_a_declined_purchase_says_why_in_the_dialog_and_keeps_the_chosen_total(
    states: States, api: Api
) -> None:
    assert (await api.put_account("acme", payment_method=DECLINE)).status_code == 200
    page = states.manage.page
    await states.open()
    await page.get_by_role("button", name="Buy now").click()
    await type_seats(page, "5")
    await expect(page.locator("#price-due")).to_have_text("$31.67")
    await page.get_by_role("button", name="Update").click()
    await dialog(page).get_by_role("button", name="Confirm seat purchase").click()
    alert = dialog(page).get_by_role("alert")
    await expect(alert).to_have_text(
        "Your card was declined. The bank declined the card without giving a reason. Nothing "
        "was charged and your seats did not change. Update the account's payment method, "
        "then try again."
    )
    await expect(alert).to_be_focused()
    await no_raw_codes(page)
    await states.capture("purchase-declined")
    await dialog(page).get_by_role("button", name="Cancel").click()
    await expect(slider(page)).to_have_value("5")  # the chosen total, not the plan's
    await expect(page.locator("#invoice-list li").first).to_contain_text("Purchase attempt")


async def test_a_removal_below_the_assigned_agents_is_refused_before_the_dialog(
    states: States, api: Api
) -> None:
    assert (await api.buy(5)).status_code == 201
    for user_id in ("alice", "bob", "carol"):
        assert (await api.assign(user_id)).status_code == 201
    page = states.manage.page
    await states.open()
    await expect(fact(page, "Seats")).to_have_text("5")
    await type_seats(page, "1")
    blocked = page.locator("#seats-blocked")
    await expect(blocked).to_have_text(
        "3 agents are assigned: unassign 2 agents before going down to 1 seat. "
        "Go to the agents list"
    )
    await expect(page.get_by_role("button", name="Update")).to_be_disabled()
    await expect(slider(page)).to_have_value("1")  # no silent jump back to the plan's 5
    await states.capture("removal-below-assigned")
    await blocked.get_by_role("link", name="Go to the agents list").click()
    await expect(page.locator("#agents")).to_be_focused()

    # A removal the agents allow: the dialog says when and what the next renewal costs.
    await type_seats(page, "4")
    await page.get_by_role("button", name="Update").click()
    await when_group(page).get_by_role("radio", name=re.compile("^Now")).check()
    breakdown = dialog(page).get_by_role("list", name="How it is priced")
    await expect(breakdown).to_contain_text(f"$19.00 per seat per month {X} 4 seats = $76.00")
    await expect(breakdown).to_contain_text("Takes effect now.")
    await expect(breakdown).to_contain_text(
        "The next renewal, on December 1, 2026, charges $76.00 (4 seats)."
    )
    await states.capture("decrease-dialog")
    await dialog(page).get_by_role("button", name="Confirm seat purchase").click()
    result = page.get_by_role("status").filter(has_text="Done: you now have 4 seats.")
    await expect(result).to_be_focused()


async def test_receipts_say_when_what_and_whether_it_was_paid(states: States, api: Api) -> None:
    assert (await api.buy(3)).status_code == 201
    await api.set_clock(NOW + timedelta(hours=3, minutes=30))
    assert (await api.buy(5)).status_code == 201
    assert (await api.put_account("acme", payment_method=DECLINE)).status_code == 200
    await api.set_clock(NOW + timedelta(hours=4))
    assert (await api.buy(12)).status_code == 402
    page = states.manage.page
    await states.open()
    receipts = page.locator("#invoice-list li")
    await expect(receipts).to_have_count(3)
    attempt, second, first = receipts.nth(0), receipts.nth(1), receipts.nth(2)
    await expect(attempt).to_contain_text("Purchase attempt")
    await expect(attempt).to_contain_text("November 21, 2026, 16:00 UTC")
    await expect(attempt).to_contain_text("Declined: not paid")
    await expect(attempt).to_contain_text("The bank declined the card without giving a reason.")
    # Two purchases of one day are told apart by their time; lines in the one date format.
    await expect(second).to_contain_text("November 21, 2026, 15:30 UTC")
    await expect(first).to_contain_text("November 21, 2026, 12:00 UTC")
    await expect(first).to_contain_text("November 21, 2026 to December 1, 2026")
    await expect(first).to_contain_text(f"3 {X} $19.00")
    await expect(first).to_contain_text("Paid")
    await no_raw_codes(page)
    await states.capture("receipts")


async def past_due(api: Api) -> str:
    """acme with 3 seats, carol an agent, whose December renewal was declined."""
    assert (await api.buy(3)).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    assert (await api.put_account("acme", payment_method=DECLINE)).status_code == 200
    await api.set_clock(DEC_1)
    assert (await billing_run(api))["renewals_declined"] == 1
    summary = await api.summary()
    return str(summary["outstanding_invoice"]["id"])


async def test_past_due_says_when_the_plan_is_canceled_and_pauses_buying(
    states: States, api: Api
) -> None:
    await past_due(api)
    page = states.manage.page
    await states.open()
    banner = page.get_by_role("region", name="Payment failed")
    await expect(banner).to_contain_text(
        "Unless it is paid, the plan will be canceled on December 15, 2026."
    )
    await expect(fact(page, "Canceled unless paid by")).to_have_text("December 15, 2026")
    await expect(fact(page, "Next renewal")).to_have_count(0)
    await expect(slider(page)).to_be_disabled()
    await expect(page.get_by_role("button", name="Update")).to_be_disabled()
    await no_raw_codes(page)
    await states.capture("past-due")

    # Paying with the same declining card: one error, in the banner, in words.
    await banner.get_by_role("button", name="Pay now").click()
    alert = banner.get_by_role("alert")
    await expect(alert).to_have_text(
        "This payment was declined too. The bank declined the card without giving a reason. "
        "Nothing was charged. Update the account's payment method, then pay again."
    )
    await expect(alert).to_be_focused()
    await expect(page.get_by_role("alert").filter(has_text=re.compile("."))).to_have_count(1)
    await no_raw_codes(page)
    await states.capture("pay-now-declined")

    assert (await api.put_account("acme", payment_method="pm_card_visa")).status_code == 200
    await banner.get_by_role("button", name="Pay now").click()
    thanks = page.get_by_role("status").filter(has_text="Thank you: $57.00 was paid.")
    await expect(thanks).to_be_focused()
    await expect(fact(page, "Next renewal")).to_have_text("January 1, 2027")
    await expect(slider(page)).to_be_enabled()
    await states.capture("paid")


async def test_roles_are_told_who_can_pay_and_whether_they_are_agents(
    states: States, api: Api
) -> None:
    await past_due(api)
    page = states.manage.page
    # Nothing may fail on a plain user's load: no 403 in the console, none on the wire.
    states.manage.watch.allowed_console.clear()
    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status == 403 else None)

    await states.open(user="bob")  # an admin
    await expect(page.locator("#role-note")).to_have_text(
        "Only Alice, the primary account admin, can start a trial, buy or remove seats and pay "
        "invoices: ask Alice. You can assign seats to agents below."
    )
    banner = page.get_by_role("region", name="Payment failed")
    await expect(banner).to_contain_text("Only Alice can pay it.")
    await expect(banner.get_by_role("button", name="Pay now")).to_have_count(0)
    await states.capture("admin-past-due")

    await page.evaluate("sessionStorage.clear()")
    await states.open(user="carol")  # a user, and an agent
    await expect(page.locator("#role-note")).to_have_text(
        "You are an agent: you have a seat and can use the inbox. Only Alice, the primary "
        "account admin, can buy seats and pay invoices."
    )
    await expect(banner).to_contain_text("Only Alice can pay it.")
    assert "pay now" not in (await page.locator("body").inner_text()).lower()
    await states.capture("user-agent-past-due")

    assert (await api.call("DELETE", "acme", "/agents/carol", user="alice")).status_code == 204
    await page.reload()
    await expect(page.locator("#role-note")).to_contain_text(
        "You are not an agent: you have no seat. Ask an admin to assign you one."
    )
    await states.capture("user-not-agent")
    assert refused == []


async def test_inputs_say_what_is_wrong_and_agents_are_sorted_by_name(
    states: States, api: Api
) -> None:
    assert (await api.buy(5)).status_code == 201
    page = states.manage.page
    await states.open()
    update = page.get_by_role("button", name="Update")
    number = page.get_by_role("spinbutton", name="Number of seats")
    for typed, says, state in (
        ("", "Enter a number of seats.", "input-empty"),
        ("2.5", "Seats are whole numbers: enter a number without decimals.", "input-fraction"),
        ("-3", "The number of seats can't be negative.", "input-negative"),
    ):
        await type_seats(page, typed)
        await expect(page.locator("#seats-error")).to_have_text(says)
        await expect(number).to_have_attribute("aria-invalid", "true")
        await expect(update).to_be_disabled()
        await states.capture(state)
    await type_seats(page, "8")
    await expect(page.locator("#seats-error")).to_have_text("")
    await expect(update).to_be_enabled()

    names = page.locator("#users .name")
    await expect(names).to_have_text(["Alice", "Bob", "Carol"])  # created Alice first


async def test_a_phone_tap_lands_on_the_total_aimed_at(states: States, api: Api) -> None:
    assert (await api.buy(14)).status_code == 201
    page = states.manage.page
    await page.set_viewport_size({"width": 375, "height": 800})
    await states.open()
    await expect(slider(page)).to_have_value("14")
    top = int(await slider(page).get_attribute("max") or "0")
    box = await slider(page).bounding_box()
    assert box is not None
    thumb = 16  # Chromium's range thumb, whose centre travels the track less its width
    for miss in (-2, 0, 2):  # a finger is not a stylus
        x = box["x"] + thumb / 2 + 25 / top * (box["width"] - thumb) + miss
        await page.mouse.click(x, box["y"] + box["height"] / 2)
        await expect(slider(page)).to_have_value("25")
    await states.capture("phone-slider")


async def test_processing_while_the_charge_runs(states: States, api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    page = states.manage.page
    held: asyncio.Future[Route] = asyncio.get_running_loop().create_future()

    async def hold(route: Route) -> None:
        held.set_result(route)  # answered below, once the busy state has been seen

    await page.route(re.compile(r"/purchases$"), hold)
    await states.open()
    await type_seats(page, "7")
    await expect(page.locator("#price-due")).to_have_text("$12.67")  # 2*1900*10/30
    await page.get_by_role("button", name="Update").click()
    await dialog(page).get_by_role("button", name="Confirm seat purchase").click()
    route = await held
    busy = dialog(page).get_by_role("button", name="Processing…")
    await expect(busy).to_be_disabled()
    await expect(dialog(page).get_by_role("button", name="Cancel")).to_be_disabled()
    await expect(dialog(page)).to_have_attribute("aria-busy", "true")
    await states.capture("processing")
    await route.continue_()
    await expect(
        page.get_by_role("status").filter(has_text="Done: you now have 7 seats.")
    ).to_be_visible()


async def test_amounts_are_in_the_accounts_currency(states: States, api: Api) -> None:
    """A euro account reads euros in a US-English browser: the summary's currency decides."""
    assert (await api.put_account("euro", currency="EUR")).status_code == 201
    assert (await api.put_user("euro", "eve", "primary_admin")).status_code == 201
    page = states.manage.page
    await states.open(user="eve", account="euro")
    await page.get_by_role("button", name="Buy now").click()
    await type_seats(page, "5")
    await expect(page.locator("#price-monthly")).to_have_text("€85.00")  # 5 * 1700
    await expect(page.locator("#price-due")).to_have_text("€28.33")  # 5*1700*10/30
    await states.capture("euro-account")


# ---------------------------------------------------------------------------------------
# R15 and R16 on the page, and the numbered receipts of §10


def when_group(page: Page) -> Locator:
    return dialog(page).get_by_role("radiogroup", name="When the seats go")


async def test_a_decrease_is_offered_at_the_period_end_first_then_shown_and_canceled(
    states: States, api: Api
) -> None:
    """R15 on the page: the period's end is the default (no refund either way), the plan says
    "25 seats until ..., then 10" with Cancel, and Cancel takes the line away."""
    assert (await api.buy(25)).status_code == 201
    page = states.manage.page
    await states.open()
    await type_seats(page, "10")
    await page.get_by_role("button", name="Update").click()
    when = when_group(page)
    end = when.get_by_role("radio", name=re.compile("^At the end of the period"))
    await expect(end).to_be_checked()
    await expect(when.get_by_role("radio", name=re.compile("^Now"))).not_to_be_checked()
    breakdown = dialog(page).get_by_role("list", name="How it is priced")
    await expect(breakdown).to_contain_text(
        "Takes effect on December 1, 2026: the 25 seats stay usable until then."
    )
    await expect(breakdown).to_contain_text(
        "The next renewal, on December 1, 2026, charges $190.00 (10 seats)."
    )
    await states.capture("schedule-dialog")

    await dialog(page).get_by_role("button", name="Confirm seat purchase").click()
    await expect(dialog(page)).to_be_hidden()
    result = page.get_by_role("status").filter(has_text="Done: you keep 25 seats until")
    await expect(result).to_be_focused()
    scheduled = page.locator("#scheduled")
    await expect(scheduled).to_contain_text("25 seats until December 1, 2026, then 10.")
    await expect(fact(page, "Seats")).to_have_text("25")
    await expect(page.locator("#agents-text")).to_contain_text(
        "10 seats can still be assigned: the plan keeps 10 from December 1, 2026."
    )
    assert (await api.summary())["scheduled_change"]["seats"] == 10
    await no_raw_codes(page)
    await states.capture("scheduled")

    await scheduled.get_by_role("button", name="Cancel").click()
    await expect(
        page.get_by_role("status").filter(has_text="The decrease is canceled: you keep 25 seats.")
    ).to_be_focused()
    await expect(scheduled).to_be_hidden()
    assert (await api.summary())["scheduled_change"] is None


async def test_now_stays_available_for_a_decrease(states: States, api: Api) -> None:
    assert (await api.buy(5)).status_code == 201
    page = states.manage.page
    await states.open()
    await type_seats(page, "4")
    await page.get_by_role("button", name="Update").click()
    await when_group(page).get_by_role("radio", name=re.compile("^Now")).check()
    breakdown = dialog(page).get_by_role("list", name="How it is priced")
    await expect(breakdown).to_contain_text("Takes effect now.")
    await dialog(page).get_by_role("button", name="Confirm seat purchase").click()
    await expect(
        page.get_by_role("status").filter(has_text="Done: you now have 4 seats.")
    ).to_be_focused()
    await expect(page.locator("#scheduled")).to_be_hidden()
    assert (await api.summary())["seats"] == 4


async def test_an_assignment_refused_for_a_scheduled_decrease_says_so_in_words(
    states: States, api: Api
) -> None:
    assert (await api.buy(3)).status_code == 201
    assert (await api.assign("alice")).status_code == 201
    r = await api.call(
        "POST", "acme", "/removals", user="alice", json={"seats": 1, "effective": "period_end"}
    )
    assert r.status_code == 200, r.text
    page = states.manage.page
    await states.open()
    await page.get_by_role("switch", name="Bob").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "The plan goes down to 1 seat on December 1, 2026, and every seat it keeps is taken. "
        "Cancel the scheduled decrease (under Your plan) to assign more agents."
    )
    await no_raw_codes(page)


async def test_banners_say_the_seats_are_all_assigned(states: States, api: Api) -> None:
    """R16's seats.exhausted (and its 100 % threshold) as one banner, in words."""
    assert (await api.put_user("acme", "dave")).status_code == 201
    assert (await api.buy(5)).status_code == 201
    for user_id in ("alice", "bob", "carol", "dave"):
        assert (await api.assign(user_id)).status_code == 201
    page = states.manage.page
    await states.open()
    banners = page.get_by_role("region", name="Reminders")
    # At the 80 % threshold: the percentage, not "all".
    await expect(banners.locator("li")).to_have_text(["80 % of the seats are assigned (4 of 5)."])
    assert (await api.remove(4)).status_code == 200
    await page.reload()
    await expect(banners.locator("li")).to_have_text(
        ["All 4 seats are assigned: buy more to add agents."]
    )
    await states.capture("banner-full")


async def test_banners_say_when_the_trial_ends(states: States, api: Api) -> None:
    assert (await api.start_trial()).status_code == 201
    await api.set_clock(NOW + timedelta(days=12))  # the trial ends on December 5
    page = states.manage.page
    await states.open()
    banners = page.get_by_role("region", name="Reminders")
    await expect(banners).to_contain_text(
        "Your free trial ends on December 5, 2026: purchase seats to keep your agents working."
    )
    # A trial has no paid period: a lower total is a purchase, with no choice of when.
    await page.get_by_role("button", name="Purchase").click()
    await type_seats(page, "5")
    await page.get_by_role("button", name="Update").click()
    await expect(when_group(page)).to_have_count(0)
    await dialog(page).get_by_role("button", name="Cancel").click()
    await states.capture("banner-trial-ending")


async def test_banners_say_when_the_renewal_comes_and_what_it_charges(
    states: States, api: Api
) -> None:
    assert (await api.put_account("euro", currency="EUR")).status_code == 201
    assert (await api.put_user("euro", "eve", "primary_admin")).status_code == 201
    assert (await api.buy(4, account_id="euro", user="eve")).status_code == 201
    summary = await api.summary("euro", user="eve")
    renews = datetime.fromisoformat(summary["next_renewal_at"])
    await api.set_clock(renews - timedelta(days=5))  # within R16's 7 days
    page = states.manage.page
    await states.open(user="eve", account="euro")
    banners = page.get_by_role("region", name="Reminders")
    await expect(banners).to_contain_text(
        f"Your plan renews on {renews:%B} {renews.day}, {renews.year}: €68.00 will be charged "
        "to the account's payment method."  # 4 seats x €17.00 for a month
    )
    await states.capture("banner-renewal")


async def test_receipts_have_their_number_seats_before_and_after_and_a_pdf(
    states: States, api: Api
) -> None:
    assert (await api.buy(3)).status_code == 201
    assert (await api.buy(5)).status_code == 201
    invoices = (await api.call("GET", "acme", "/invoices?limit=10", user="alice")).json()["data"]
    newest = invoices[0]
    number = newest["number"]
    page = states.manage.page
    await states.open()
    receipt = page.locator("#invoice-list li").first
    await expect(receipt).to_contain_text(f"Purchase {number}")
    await expect(receipt).to_contain_text("Seats 3 → 5")
    pdf = re.compile(r"/invoices/[^/]+/pdf$")
    async with page.expect_response(pdf) as answer, page.expect_download() as started:
        await receipt.get_by_role("button", name=f"Download PDF of {number}").click()
    response = await answer.value
    assert response.status == 200
    assert await response.header_value("content-type") == "application/pdf"
    download = await started.value
    assert download.suggested_filename == f"{number}.pdf"
    await no_raw_codes(page)
    await states.capture("receipts-numbered")
