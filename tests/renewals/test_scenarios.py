"""Scenarios over a simulated year (Lago-style ``travel_to { perform_billing }``): the clock moves
period by period with events in between, the billing run runs at every step, and at the end the
ledger is reconciled with what the payments server really charged and with SPEC §3's formulas,
recomputed here from each invoice's period, seats and date."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tests.conftest import NOW, Api, problem
from tests.payments_server import PaymentsServer
from tests.renewals.conftest import PRICE, agent, events, invoices, pay, prorated, run_billing

ANCHORS = {"acme": (date(2026, 11, 1), 1), "globex": (date(2026, 3, 15), 12)}
OWNER = {"acme": "alice", "globex": "gina"}


def shift(anchor: date, months: int) -> date:
    """``anchor`` moved by ``months``, the day clamped to the month's length (SPEC §3)."""
    year, month = divmod(anchor.year * 12 + anchor.month - 1 + months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(anchor.day, last))


def period_containing(account_id: str, day: date) -> tuple[date, date]:
    anchor, months = ANCHORS[account_id]
    for k in range(-40, 40):
        start, end = shift(anchor, k * months), shift(anchor, (k + 1) * months)
        if start <= day < end:
            return start, end
    raise AssertionError(f"no period for {day}")


@dataclass
class Books:
    """What the test expects the ledger to hold, from the actions it took."""

    api: Api
    now: datetime = NOW
    seats: dict[str, int] = field(default_factory=lambda: {"acme": 0, "globex": 0})
    paid_through: dict[str, date | None] = field(
        default_factory=lambda: {"acme": None, "globex": None}
    )
    # (account, kind, first day covered) -> the amount SPEC §3 says
    expected: dict[tuple[str, str, date], int] = field(default_factory=dict)

    async def travel_to(self, when: datetime) -> None:
        """Move the clock to ``when``, stopping at every period boundary to run billing."""
        assert when >= self.now
        stops = {when}
        for account_id, end in self.paid_through.items():
            anchor, months = ANCHORS[account_id]
            k = 0
            while end is not None and (boundary := shift(anchor, k * months)) <= when.date():
                if boundary >= end and boundary > self.now.date():
                    stops.add(datetime.combine(boundary, time(), UTC))
                k += 1
        for stop in sorted(stops):
            self.now = stop
            await self.api.set_clock(stop)
            await run_billing(self.api)
            self.renewals_due()

    def renewals_due(self) -> None:
        """Renewals the run must have made up to now (0-seat periods have no invoice)."""
        for account_id, end in self.paid_through.items():
            _, months = ANCHORS[account_id]
            while end is not None and end <= self.now.date():
                start, end = period_containing(account_id, end)
                if self.seats[account_id]:
                    amount = self.seats[account_id] * PRICE * months
                    self.expected[(account_id, "renewal", start)] = amount
                self.paid_through[account_id] = end

    async def buy(self, account_id: str, seats: int) -> dict[str, Any]:
        r = await self.api.buy(seats, account_id=account_id, user=OWNER[account_id])
        assert r.status_code == 201, r.text
        today = self.now.date()
        start, end = period_containing(account_id, today)
        if self.paid_through[account_id] is None:
            self.paid_through[account_id] = end
        _, months = ANCHORS[account_id]
        added = seats - self.seats[account_id]
        amount = prorated(added, months, (end - today).days, (end - start).days)
        self.expected[(account_id, "purchase", today)] = amount
        self.seats[account_id] = seats
        body: dict[str, Any] = r.json()
        return body

    async def remove(self, account_id: str, seats: int) -> None:
        r = await self.api.remove(seats, account_id=account_id, user=OWNER[account_id])
        assert r.status_code == 200, r.text
        self.seats[account_id] = seats


def first_day(invoice: dict[str, Any]) -> date:
    return date.fromisoformat(invoice["lines"][0]["period_start"])


async def test_r9_r10_a_year_of_billing_reconciles_with_the_payments_server(
    http_api: Api, payments_server: PaymentsServer
) -> None:
    api, server = http_api, payments_server
    books = Books(api)
    await api.add_users(3)

    # acme: a trial with two agents, left to expire (R10).
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    assert (await api.assign("u0")).status_code == 201
    # globex buys straight away (yearly, prorated over 2026-03-15..2027-03-15).
    await books.buy("globex", 2)
    await books.travel_to(datetime(2026, 12, 5, 12, tzinfo=UTC))  # the trial's last instant
    assert (await api.summary())["status"] == "trial_expired"
    assert (await agent(api, "carol"))["active"] is False

    # ... and converted with the agents kept (R10): access comes back.
    await books.travel_to(datetime(2026, 12, 10, 9, tzinfo=UTC))
    problem(await api.buy(1), 409, "seats_assigned")
    await books.buy("acme", 3)
    assert (await agent(api, "carol")) == {"user_id": "carol", "agent": True, "active": True}
    assert (await api.summary())["assigned"] == 2

    # A purchase mid-period charges the added seats, prorated (R6).
    await books.travel_to(datetime(2027, 1, 15, 15, tzinfo=UTC))
    await books.buy("acme", 6)
    assert (await api.assign("u1")).status_code == 201
    assert (await api.assign("u2")).status_code == 201

    # A removal mid-period refunds nothing; the next renewal charges the new total (R7).
    await books.travel_to(datetime(2027, 2, 20, 10, tzinfo=UTC))
    assert (await api.unassign("u2")).status_code == 204
    await books.remove("acme", 4)

    # The April renewal is declined (R9): past due, agents keep access, then paid.
    await books.travel_to(datetime(2027, 3, 20, tzinfo=UTC))
    assert (await api.put_account("acme", payment_method="pm_decline_x")).status_code == 200
    await books.travel_to(datetime(2027, 4, 1, 8, tzinfo=UTC))
    assert (await api.summary())["status"] == "past_due"
    assert (await agent(api, "u1"))["active"] is True
    problem(await api.buy(9), 409, "past_due")
    (declined,) = [i for i in await invoices(api) if i["status"] == "pending"]
    assert first_day(declined) == date(2027, 4, 1)
    assert (await api.put_account("acme", payment_method="pm_card_visa")).status_code == 200
    r = await pay(api, declined["id"])
    assert r.status_code == 200, r.text
    assert (await api.summary())["status"] == "active"

    # globex adds seats in its second year (prorated over 2027-03-15..2028-03-15, 366 days).
    await books.travel_to(datetime(2027, 6, 10, 11, tzinfo=UTC))
    await books.buy("globex", 5)

    # A purchase whose charge went through but whose answer was lost: settled by the run.
    await books.travel_to(datetime(2027, 7, 10, 12, tzinfo=UTC))
    server.fail_next(3, "error_after_charge")
    problem(await api.buy(8, key="july"), 503, "payment_pending")
    books.expected[("acme", "purchase", date(2027, 7, 10))] = prorated(4, 1, 22, 31)
    books.seats["acme"] = 8  # applied by the next run, within SEATS_PENDING_PURCHASE_HOURS
    await books.travel_to(datetime(2027, 7, 10, 13, tzinfo=UTC))
    # A renewal charged with its answer lost, too: retried under the same key.
    await books.travel_to(datetime(2027, 9, 30, tzinfo=UTC))
    server.fail_next(3, "error_after_charge")
    await books.travel_to(datetime(2027, 10, 1, 6, tzinfo=UTC))
    await books.travel_to(datetime(2027, 10, 2, 6, tzinfo=UTC))

    await books.travel_to(datetime(2027, 10, 20, tzinfo=UTC))
    await books.remove("acme", 3)
    await books.travel_to(datetime(2028, 3, 15, 12, tzinfo=UTC))  # 16 months in all

    # --- reconcile ----------------------------------------------------------------------
    ledger = {acc: await invoices(api, acc) for acc in ("acme", "globex")}
    everything = [i for found in ledger.values() for i in found]
    assert all(i["status"] == "paid" for i in everything), [
        (i["id"], i["status"]) for i in everything if i["status"] != "paid"
    ]
    actual = {
        (acc, i["kind"], first_day(i)): i["total"] for acc, found in ledger.items() for i in found
    }
    assert actual == books.expected
    # 15 monthly renewals for acme from Jan 2027 to Mar 2028, two yearly ones for globex.
    assert sum(1 for acc, kind, _ in actual if (acc, kind) == ("acme", "renewal")) == 15
    assert sum(1 for acc, kind, _ in actual if (acc, kind) == ("globex", "renewal")) == 2

    charges = {c["id"]: c for c in server.charges}
    assert len(charges) == len(server.charges)
    paid_by_charge = {i["charge_id"]: i for i in everything}
    assert len(paid_by_charge) == len(everything)  # no charge pays two invoices
    assert set(paid_by_charge) == set(charges)  # each charge pays exactly one invoice
    for charge_id, invoice in paid_by_charge.items():
        charge = charges[charge_id]
        assert charge["amount"] == invoice["total"]
        assert charge["idempotency_key"].split("-")[0] == invoice["id"]
    assert sum(i["total"] for i in everything) == sum(c["amount"] for c in server.charges)

    # The plan and the audit log tell the same story.
    summary = await api.summary()
    assert (summary["status"], summary["seats"], summary["assigned"]) == ("active", 3, 3)
    assert summary["current_period"] == {"start": "2028-03-01", "end": "2028-04-01"}
    globex = await api.summary("globex", user="gina")
    assert (globex["seats"], globex["current_period"]) == (
        5,
        {"start": "2028-03-15", "end": "2029-03-15"},
    )
    assert len(await events(api, type="trial.expired")) == 1
    assert len(await events(api, type="plan.past_due")) == 1
    assert len(await events(api, type="plan.recovered")) == 1
    assert len(await events(api, type="plan.renewed")) == 15


async def test_r9_r10_daily_billing_runs_over_two_months(api: Api, sql: Any) -> None:
    """Running billing every day (as cron would) expires the trial on its day and renews
    each period once, on its first day."""
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("carol")).status_code == 201
    expired_on = None
    day = NOW
    while day < datetime(2027, 2, 2, 12, tzinfo=UTC):
        day += timedelta(days=1)
        await api.set_clock(day)
        report = await run_billing(api)
        if report["trials_expired"]:
            assert expired_on is None
            expired_on = day
            assert (await api.buy(2)).status_code == 201  # converted on the day it expired
        if report["renewals_invoiced"]:
            assert day.day == 1, day
    assert expired_on == NOW + timedelta(days=14)
    rows = await sql(
        "SELECT period_start, total FROM invoice WHERE kind = 'renewal' ORDER BY period_start"
    )
    assert [(str(r[0])[:10], r[1]) for r in rows] == [
        ("2027-01-01", 2 * PRICE),
        ("2027-02-01", 2 * PRICE),
    ]
