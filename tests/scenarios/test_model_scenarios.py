"""The service against an independent model of SPEC §3, R12 and R15, through the HTTP API only.

Randomized year-long scenarios (seeded, so a failure replays exactly) mix trials, purchases
(some confirmed by a quote, some replayed with their ``Idempotency-Key``), removals, decreases
scheduled for the period's end (replaced, canceled, or canceled by a purchase), agents and
changes of the account's billing cycle and anchor, while the test clock moves on. The billing run
runs at every boundary the model knows of (trial end, the plan's period end), on random days, and
sometimes only after several periods were missed. After every step, every invoice of the ledger
must be the model's to the cent (kind, total, quantity, the line's period), and the plan summary
must show the model's status, seats, agents and current period.

The named tests below them walk SPEC §3's and issue 9's own examples.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from tests.conftest import NOW, Api, problem
from tests.renewals.conftest import invoices, run_billing
from tests.scenarios.model import AccountModel, ExpectedInvoice, round_half_up

ACCOUNT, OWNER = "acme", "alice"
USERS = ("u0", "u1", "u2", "u3", "u4")
YEAR_END = NOW + timedelta(days=366)

InvoiceKey = tuple[str, str, str, int, int]


def random_anchor(rng: random.Random, around: date) -> date:
    """An anchor up to two years back or one ahead, often on a day some months lack."""
    year = around.year + rng.choice((-2, -1, -1, 0, 0, 0, 1))
    month = rng.randint(1, 12)
    day = rng.choice((1, 15, 28, 29, 30, 31, rng.randint(1, 31)))
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day, last))


def ledger_keys(found: list[dict[str, Any]]) -> list[InvoiceKey]:
    """The service's invoices in the model's terms, each checked to be one paid, consistent line."""
    keys = []
    for invoice in found:
        assert invoice["status"] == "paid", invoice  # the sandbox gateway declines nothing here
        assert len(invoice["lines"]) == 1, invoice
        (line,) = invoice["lines"]
        assert line["amount"] == invoice["total"], invoice
        keys.append(
            (
                line["period_start"],
                line["period_end"],
                invoice["kind"],
                line["quantity"],
                invoice["total"],
            )
        )
    return sorted(keys)


@dataclass
class Scenario:
    """One account driven through the API, step by step, next to its model."""

    api: Api
    rng: random.Random
    model: AccountModel
    now: datetime = NOW
    log: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.log.append(f"{self.now:%Y-%m-%d %H:%M} {what}")

    def story(self) -> str:
        return "\n".join(["", *self.log[-25:]])

    def expect(self, ok: bool, what: str) -> None:
        assert ok, f"{what}\nlast steps:{self.story()}"

    async def check(self) -> None:
        """The ledger and the plan summary are the model's."""
        actual = ledger_keys(await invoices(self.api, ACCOUNT))
        expected = sorted(i.key() for i in self.model.invoices)
        if actual != expected:
            missing = [k for k in expected if k not in actual]
            extra = [k for k in actual if k not in expected]
            self.expect(False, f"ledger differs: model has {missing}, service has {extra}")
        summary = await self.api.summary(ACCOUNT, OWNER)
        fields = ("status", "seats", "assigned", "current_period", "scheduled_change")
        shown = {k: summary[k] for k in fields}
        self.expect(shown == self.model.summary(), f"summary {shown} != {self.model.summary()}")

    # --- time -----------------------------------------------------------------------------------

    async def at(self, when: datetime, *, bill: bool) -> None:
        if when != self.now:
            await self.api.set_clock(when)
            self.now = when
        if bill:
            await run_billing(self.api)
            self.model.run_billing(when)
            self.note("billing run")

    async def travel(self, target: datetime, *, catch_up: bool = False) -> None:
        """Move the clock to ``target``, running billing at each boundary on the way, or (when
        ``catch_up``) only at ``target``, after whatever periods it missed."""
        if not catch_up:
            while (stop := self.model.next_boundary()) is not None and self.now < stop <= target:
                await self.at(stop, bill=True)
        await self.at(target, bill=catch_up or self.rng.random() < 0.2)

    # --- actions --------------------------------------------------------------------------------

    async def start_trial(self) -> None:
        code = self.model.start_trial(self.now)
        self.note(f"trial -> {code or 'ok'}")
        r = await self.api.start_trial(ACCOUNT, OWNER)
        if code:
            problem(r, 409, code)
        else:
            self.expect(r.status_code == 201, r.text)

    async def change_settings(self) -> None:
        rng, model = self.rng, self.model
        what = rng.choice(("cycle", "anchor", "both"))
        cycle = model.cycle
        if what != "anchor":
            cycle = "yearly" if cycle == "monthly" else "monthly"
        anchor = model.anchor if what == "cycle" else random_anchor(rng, self.now.date())
        model.change_settings(anchor=anchor, cycle=cycle)
        self.note(f"account -> {cycle}, anchor {anchor}")
        r = await self.api.put_account(
            ACCOUNT, billing_cycle=cycle, billing_anchor=anchor.isoformat()
        )
        self.expect(r.status_code == 200, r.text)

    async def quote(self, seats: int) -> dict[str, Any]:
        r = await self.api.call("POST", ACCOUNT, "/quotes", user=OWNER, json={"seats": seats})
        self.expect(r.status_code == 201, r.text)
        body: dict[str, Any] = r.json()
        today = self.now.date()
        want = self.model.quote(seats, today)
        got = body["proration"]
        self.expect(
            (body["due_now"], got["period_start"], got["period_end"], got["days_remaining"])
            == (
                want.due_now,
                want.period.start.isoformat(),
                want.period.end.isoformat(),
                want.days_remaining,
            )
            and got["days_in_period"] == want.period.days
            and body["next_renewal_total"] == self.model.next_renewal_total(seats, today),
            f"quote for {seats}: service {body['due_now']} {got} "
            f"next renewal {body['next_renewal_total']}, model {want}",
        )
        return body

    async def buy(self) -> None:
        rng, model = self.rng, self.model
        if model.paid:
            seats = model.seats + rng.choice((0, 1, 1, 2, 3, 5, 10, 40))
        else:
            seats = rng.randint(0, 25)
        extra: dict[str, Any] = {}
        if rng.random() < 0.3:
            extra["quote_id"] = (await self.quote(seats))["id"]
        code = model.purchase(seats, self.now.date())
        self.note(f"buy {seats} -> {code or model.invoices[-1]}")
        key = uuid.uuid4().hex
        r = await self.api.buy(seats, ACCOUNT, OWNER, key=key, **extra)
        if code:
            problem(r, 409, code)  # 0 is a valid total (SPEC §4), just never an increase
            return
        self.expect(r.status_code == 201, r.text)
        invoice = r.json()["invoice"]
        self.expect(
            invoice["total"] == model.invoices[-1].total,
            f"purchase charged {invoice['total']}, model {model.invoices[-1]}",
        )
        if rng.random() < 0.2:
            again = await self.api.buy(seats, ACCOUNT, OWNER, key=key, **extra)
            self.expect(
                (again.status_code, again.json(), again.headers.get("idempotent-replayed"))
                == (201, r.json(), "true"),
                f"replay: {again.status_code} {again.text}",
            )

    async def remove(self) -> None:
        seats = self.rng.randint(0, self.model.seats) if self.model.seats else 0
        code = self.model.remove(seats)
        self.note(f"remove to {seats} -> {code or 'ok'}")
        r = await self.api.remove(seats, ACCOUNT, OWNER)
        if code:
            problem(r, 409, code)
        else:
            self.expect(r.status_code == 200, r.text)

    async def schedule_decrease(self) -> None:
        """R15: a lower total for the period's end, sometimes quoted first."""
        seats = self.rng.randint(0, self.model.seats) if self.model.seats else 0
        if self.rng.random() < 0.3 and self.model.paid and seats < self.model.seats:
            body = await self.quote_decrease(seats)
            self.expect(body["due_now"] == 0, f"a decrease charges nothing now: {body}")
        code = self.model.schedule(seats, self.now.date())
        self.note(f"schedule {seats} at period end -> {code or 'ok'}")
        body = {"seats": seats, "effective": "period_end"}
        r = await self.api.call("POST", ACCOUNT, "/removals", user=OWNER, json=body)
        if code:
            problem(r, 409, code)
        else:
            self.expect(r.status_code == 200, r.text)

    async def quote_decrease(self, seats: int) -> dict[str, Any]:
        path = f"/quote-preview?seats={seats}&effective=period_end"
        r = await self.api.call("GET", ACCOUNT, path, user=OWNER)
        self.expect(r.status_code == 200, r.text)
        body: dict[str, Any] = r.json()
        want = self.model.next_renewal_total(seats, self.now.date())
        self.expect(
            body["next_renewal_total"] == want,
            f"decrease to {seats}: next renewal {body['next_renewal_total']}, model {want}",
        )
        return body

    async def cancel_schedule(self) -> None:
        code = self.model.cancel_schedule()
        self.note(f"cancel schedule -> {code or 'ok'}")
        r = await self.api.call("DELETE", ACCOUNT, "/scheduled-change", user=OWNER)
        if code:
            problem(r, 404, code)
        else:
            self.expect(r.status_code == 204, r.text)

    async def toggle_agent(self) -> None:
        user_id = self.rng.choice(USERS)
        if user_id in self.model.assigned and self.rng.random() < 0.6:
            code = self.model.unassign(user_id)
            self.note(f"unassign {user_id} -> {code or 'ok'}")
            r = await self.api.unassign(user_id, ACCOUNT, OWNER)
            self.expect(r.status_code == 204, r.text)
            return
        again = user_id in self.model.assigned
        code = self.model.assign(user_id)
        self.note(f"assign {user_id} -> {code or 'ok'}")
        r = await self.api.assign(user_id, ACCOUNT, OWNER)
        if code:
            problem(r, 409, code)
        else:
            self.expect(r.status_code == (200 if again else 201), r.text)

    async def step(self) -> None:
        """One random action, then time moves on."""
        rng, model = self.rng, self.model
        actions: list[tuple[float, Any]] = [
            (3.0, self.buy),
            (2.0 if model.paid else 0.2, self.remove),
            (1.5 if model.paid else 0.1, self.schedule_decrease),
            (0.8 if model.scheduled is not None else 0.1, self.cancel_schedule),
            (1.5, self.change_settings),
            (1.2, self.toggle_agent),
            (2.0 if model.status == "none" else 0.1, self.start_trial),
            (2.0, None),  # nothing happens but time
        ]
        chosen = rng.choices([a for _, a in actions], [w for w, _ in actions])[0]
        if chosen is not None:
            await chosen()
        gap = rng.choice(
            (
                timedelta(hours=rng.randint(1, 20)),
                timedelta(days=rng.randint(1, 6), hours=rng.randint(0, 23)),
                timedelta(days=rng.randint(6, 25), minutes=rng.randint(0, 1439)),
                timedelta(days=rng.randint(25, 45)),
            )
        )
        catch_up = rng.random() < 0.08
        if catch_up:
            gap += timedelta(days=rng.randint(30, 120))
        await self.travel(min(self.now + gap, YEAR_END), catch_up=catch_up)
        await self.check()


@pytest.mark.parametrize("seed", range(50))
async def test_r12_random_year_matches_the_model(api: Api, seed: int) -> None:
    rng = random.Random(seed)
    await api.add_users(len(USERS))
    anchor = random_anchor(rng, NOW.date())
    cycle = rng.choice(("monthly", "yearly"))
    r = await api.put_account(ACCOUNT, billing_cycle=cycle, billing_anchor=anchor.isoformat())
    assert r.status_code == 200, r.text
    scenario = Scenario(api, rng, AccountModel(anchor=anchor, cycle=cycle))
    scenario.note(f"seed {seed}: {cycle}, anchor {anchor}")
    while scenario.now < YEAR_END:
        await scenario.step()
    await scenario.travel(YEAR_END + timedelta(days=100), catch_up=True)
    await scenario.check()


# --- SPEC §3's and issue 9's examples, through the API ------------------------------------------


async def at(api: Api, when: datetime, *, bill: bool = False) -> None:
    await api.set_clock(when)
    if bill:
        await run_billing(api)


def only_line(invoice: dict[str, Any]) -> tuple[str, int, int, str, str]:
    (line,) = invoice["lines"]
    return (
        invoice["kind"],
        invoice["total"],
        line["quantity"],
        line["period_start"],
        line["period_end"],
    )


async def bought(api: Api, seats: int, account_id: str = ACCOUNT, user: str = OWNER) -> Any:
    r = await api.buy(seats, account_id, user)
    assert r.status_code == 201, r.text
    return r.json()["invoice"]


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def test_r6_purchase_is_prorated_as_the_spec_example(api: Api) -> None:
    """§3: monthly, 1900, period 2026-11-01..12-01, 5 seats bought on 11-21: 10/30 days, 3167."""
    invoice = await bought(api, 5)
    assert only_line(invoice) == ("purchase", 3167, 5, "2026-11-21", "2026-12-01")
    model = AccountModel(anchor=date(2026, 11, 1), cycle="monthly")
    model.purchase(5, NOW.date())
    assert model.invoices == [ExpectedInvoice("purchase", 3167, 5, NOW.date(), date(2026, 12, 1))]


async def test_r12_cycle_change_prices_against_billed_period(api: Api) -> None:
    """Issue 9 #1: a monthly account switched to yearly on day 21, then 5 more seats: the plan
    was billed monthly for 11-01..12-01, so they cost 10/30 of a month, 3167 (not 38,000)."""
    await at(api, midnight(date(2026, 11, 1)))
    assert only_line(await bought(api, 1)) == ("purchase", 1900, 1, "2026-11-01", "2026-12-01")
    await at(api, NOW)
    r = await api.put_account(ACCOUNT, billing_cycle="yearly", billing_anchor="2026-11-01")
    assert r.status_code == 200, r.text
    summary = await api.summary()
    assert summary["current_period"] == {"start": "2026-11-01", "end": "2026-12-01"}
    r = await api.call("POST", ACCOUNT, "/quotes", user=OWNER, json={"seats": 6})
    assert r.status_code == 201, r.text
    assert r.json()["due_now"] == 3167, r.json()
    assert only_line(await bought(api, 6)) == ("purchase", 3167, 5, "2026-11-21", "2026-12-01")


async def test_r12_cycle_change_to_monthly_prices_against_billed_year(api: Api) -> None:
    """The reverse of issue 9 #1: a yearly plan (2026-03-15..2027-03-15, 365 days) whose account
    turned monthly still prices a purchase as a year: 5 seats x 1900 x 12 x 114/365 = 35605."""
    assert only_line(await bought(api, 1, "globex", "gina"))[0] == "purchase"
    r = await api.put_account(
        "globex", name="Globex", billing_cycle="monthly", billing_anchor="2026-03-15"
    )
    assert r.status_code == 200, r.text
    invoice = await bought(api, 6, "globex", "gina")
    assert only_line(invoice) == ("purchase", 35605, 5, "2026-11-21", "2027-03-15")
    assert round_half_up(5 * 1900 * 12 * 114, 365) == 35605


async def test_r12_bridge_renewal_after_anchor_change(api: Api) -> None:
    """§3: anchor moved from the 1st to the 15th, 10 seats, paid period 2026-11-01..12-01: the
    renewal on 12-01 bills 14/30 days, 8867, up to 12-15; the plan's period becomes the whole
    2026-11-15..12-15; the next renewal, on 12-15, is a whole month."""
    await at(api, midnight(date(2026, 11, 1)))
    assert only_line(await bought(api, 10))[1] == 19000
    await at(api, NOW)
    r = await api.put_account(ACCOUNT, billing_anchor="2026-11-15")
    assert r.status_code == 200, r.text
    await at(api, midnight(date(2026, 12, 1)), bill=True)
    renewals = await invoices(api, ACCOUNT, kind="renewal")
    assert [only_line(i) for i in renewals] == [("renewal", 8867, 10, "2026-12-01", "2026-12-15")]
    summary = await api.summary()
    assert summary["current_period"] == {"start": "2026-11-15", "end": "2026-12-15"}
    await at(api, midnight(date(2026, 12, 15)), bill=True)
    renewals = await invoices(api, ACCOUNT, kind="renewal")
    assert only_line(renewals[-1]) == ("renewal", 19000, 10, "2026-12-15", "2027-01-15")


async def test_r12_purchase_after_a_bridge_prices_against_the_new_whole_period(api: Api) -> None:
    """After the §3 bridge the plan's period is 2026-11-15..12-15 (30 days): 2 seats bought on
    12-05 cost 10/30 of a month, round(2 x 1900 x 10 / 30) = 1267."""
    await at(api, midnight(date(2026, 11, 1)))
    await bought(api, 10)
    assert (await api.put_account(ACCOUNT, billing_anchor="2026-11-15")).status_code == 200
    await at(api, midnight(date(2026, 12, 1)), bill=True)
    await at(api, datetime(2026, 12, 5, 9, tzinfo=UTC))
    assert only_line(await bought(api, 12)) == ("purchase", 1267, 2, "2026-12-05", "2026-12-15")


async def test_r12_bridge_renewal_after_cycle_change(api: Api) -> None:
    """Monthly (anchor 11-01) switched to yearly: the renewal at the old end 12-01 starts the
    yearly period that contains it, 2026-11-01..2027-11-01 (365 days), and bills only the 335
    days from 12-01: round(6 x 1900 x 12 x 335 / 365) = 125556; the next one is a whole year."""
    await at(api, midnight(date(2026, 11, 1)))
    await bought(api, 6)
    assert (await api.put_account(ACCOUNT, billing_cycle="yearly")).status_code == 200
    await at(api, midnight(date(2026, 12, 1)), bill=True)
    (renewal,) = await invoices(api, ACCOUNT, kind="renewal")
    assert only_line(renewal) == ("renewal", 125556, 6, "2026-12-01", "2027-11-01")
    assert round_half_up(6 * 1900 * 12 * 335, 365) == 125556
    summary = await api.summary()
    assert summary["current_period"] == {"start": "2026-11-01", "end": "2027-11-01"}
    await at(api, midnight(date(2027, 11, 1)), bill=True)
    renewals = await invoices(api, ACCOUNT, kind="renewal")
    assert only_line(renewals[-1]) == ("renewal", 6 * 1900 * 12, 6, "2027-11-01", "2028-11-01")


async def test_r12_one_day_bridge_of_a_yearly_plan(api: Api) -> None:
    """Issue 9 #2: a yearly plan (anchor 2026-03-15) whose anchor moved one day later renews at
    2027-03-15 into 2026-03-16..2027-03-16 (365 days): one day, round(10 x 1900 x 12 / 365) = 625,
    not 228,000."""
    await bought(api, 10, "globex", "gina")
    r = await api.put_account(
        "globex", name="Globex", billing_cycle="yearly", billing_anchor="2026-03-16"
    )
    assert r.status_code == 200, r.text
    await at(api, midnight(date(2027, 3, 15)), bill=True)
    (renewal,) = await invoices(api, "globex", kind="renewal")
    assert only_line(renewal) == ("renewal", 625, 10, "2027-03-15", "2027-03-16")
    summary = await api.summary("globex", "gina")
    assert summary["current_period"] == {"start": "2026-03-16", "end": "2027-03-16"}
    await at(api, midnight(date(2027, 3, 16)), bill=True)
    renewals = await invoices(api, "globex", kind="renewal")
    assert only_line(renewals[-1]) == ("renewal", 228000, 10, "2027-03-16", "2028-03-16")


async def test_r12_settings_change_keeps_the_plan_period_until_its_end(api: Api) -> None:
    """Changing the cycle and anchor mid-period changes nothing the plan already paid for."""
    await bought(api, 3)
    before = await api.summary()
    r = await api.put_account(ACCOUNT, billing_cycle="yearly", billing_anchor="2026-06-30")
    assert r.status_code == 200, r.text
    await at(api, datetime(2026, 11, 30, 23, tzinfo=UTC), bill=True)
    after = await api.summary()
    assert (
        after["current_period"]
        == before["current_period"]
        == {
            "start": "2026-11-01",
            "end": "2026-12-01",
        }
    )
    assert await invoices(api, ACCOUNT, kind="renewal") == []
