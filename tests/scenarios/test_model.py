"""The scenario model holds SPEC §3's own examples and its period rules, with no service at all."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tests.scenarios.model import (
    AccountModel,
    ExpectedInvoice,
    Period,
    period_containing,
    round_half_up,
    shift_months,
)


def test_round_half_up_rounds_halves_up_in_integers() -> None:
    assert [round_half_up(n, 2) for n in range(6)] == [0, 1, 1, 2, 2, 3]
    assert round_half_up(95000, 30) == 3167  # 3166.67
    assert round_half_up(10**30 + 1, 2) == 5 * 10**29 + 1  # no float anywhere


def test_anchor_days_clamp_and_never_chain() -> None:
    anchor = date(2027, 1, 31)
    assert [shift_months(anchor, k) for k in range(4)] == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
    ]
    assert shift_months(date(2028, 2, 29), 12) == date(2029, 2, 28)
    assert shift_months(date(2028, 2, 29), 48) == date(2032, 2, 29)
    assert period_containing(anchor, "monthly", date(2027, 3, 30)) == Period(
        date(2027, 2, 28), date(2027, 3, 31)
    )
    assert period_containing(anchor, "monthly", date(2026, 12, 31)) == Period(
        date(2026, 12, 31), date(2027, 1, 31)
    )
    assert period_containing(date(2026, 3, 15), "yearly", date(2026, 3, 14)) == Period(
        date(2025, 3, 15), date(2026, 3, 15)
    )


@pytest.mark.parametrize("cycle", ["monthly", "yearly"])
def test_periods_tile_the_calendar(cycle: str) -> None:
    anchor = date(2024, 8, 31)
    day = date(2025, 1, 1)
    while day < date(2028, 1, 1):
        period = period_containing(anchor, cycle, day)
        assert period.start <= day < period.end
        assert period_containing(anchor, cycle, period.end).start == period.end
        day = period.end


def test_spec_example_purchase_prorated_over_the_period() -> None:
    """§3: monthly 1900, period 2026-11-01..12-01, 5 seats on 11-21: 10/30 days, 3167."""
    model = AccountModel(anchor=date(2026, 11, 1), cycle="monthly")
    assert model.purchase(5, date(2026, 11, 21)) is None
    assert model.invoices == [
        ExpectedInvoice("purchase", 3167, 5, date(2026, 11, 21), date(2026, 12, 1))
    ]
    assert model.summary()["current_period"] == {"start": "2026-11-01", "end": "2026-12-01"}


def test_spec_example_bridge_after_anchor_change() -> None:
    """§3: anchor moved from the 1st to the 15th, 10 seats: the 12-01 renewal bills 14/30 days
    (8867), the plan's period becomes 11-15..12-15, and the next renewal is a whole month."""
    model = AccountModel(anchor=date(2026, 11, 1), cycle="monthly")
    assert model.purchase(10, date(2026, 11, 1)) is None
    model.change_settings(anchor=date(2026, 11, 15), cycle="monthly")
    model.run_billing(datetime(2026, 12, 1, tzinfo=UTC))
    assert model.invoices[-1] == ExpectedInvoice(
        "renewal", 8867, 10, date(2026, 12, 1), date(2026, 12, 15)
    )
    assert model.period == Period(date(2026, 11, 15), date(2026, 12, 15))
    model.run_billing(datetime(2026, 12, 15, tzinfo=UTC))
    assert model.invoices[-1] == ExpectedInvoice(
        "renewal", 19000, 10, date(2026, 12, 15), date(2027, 1, 15)
    )


def test_spec_example_cycle_change_prices_against_the_billed_cycle() -> None:
    """R12 / issue 9: monthly switched to yearly on day 21, then 5 seats: 3167, not 38,000."""
    model = AccountModel(anchor=date(2026, 11, 1), cycle="monthly")
    assert model.purchase(1, date(2026, 11, 1)) is None
    model.change_settings(anchor=date(2026, 11, 1), cycle="yearly")
    assert model.quote(6, date(2026, 11, 21)).due_now == 3167
    assert model.purchase(6, date(2026, 11, 21)) is None
    assert model.invoices[-1] == ExpectedInvoice(
        "purchase", 3167, 5, date(2026, 11, 21), date(2026, 12, 1)
    )
    # The yearly period that contains the old end 12-01 is 11-01..2027-11-01: a bridge.
    model.run_billing(datetime(2026, 12, 1, tzinfo=UTC))
    assert model.invoices[-1] == ExpectedInvoice(
        "renewal", round_half_up(6 * 1900 * 12 * 335, 365), 6, date(2026, 12, 1), date(2027, 11, 1)
    )
    assert model.period == Period(date(2026, 11, 1), date(2027, 11, 1))
    assert model.plan_cycle == "yearly"


def test_missed_periods_are_renewed_one_at_a_time_and_empty_ones_bill_nothing() -> None:
    model = AccountModel(anchor=date(2026, 1, 31), cycle="monthly")
    assert model.purchase(2, date(2026, 1, 31)) is None
    model.run_billing(datetime(2026, 4, 2, tzinfo=UTC))
    assert [(i.period_start, i.period_end, i.total) for i in model.invoices[1:]] == [
        (date(2026, 2, 28), date(2026, 3, 31), 3800),
        (date(2026, 3, 31), date(2026, 4, 30), 3800),
    ]
    assert model.remove(0) is None
    model.run_billing(datetime(2026, 6, 1, tzinfo=UTC))
    assert len(model.invoices) == 3
    assert model.period == Period(date(2026, 5, 31), date(2026, 6, 30))


def test_removal_moves_no_money_and_the_next_renewal_bills_the_new_total() -> None:
    model = AccountModel(anchor=date(2026, 11, 1), cycle="yearly")
    assert model.purchase(5, date(2026, 11, 1)) is None
    assert model.remove(3) is None
    assert model.remove(3) == "not_a_decrease"
    assert len(model.invoices) == 1
    model.run_billing(datetime(2027, 11, 1, tzinfo=UTC))
    assert model.invoices[-1].total == 3 * 1900 * 12


def test_trial_then_expiry_keeps_agents_and_a_purchase_must_cover_them() -> None:
    model = AccountModel(anchor=date(2026, 11, 1), cycle="monthly")
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert model.start_trial(now) is None
    assert model.start_trial(now) == "trial_already_used"
    assert model.assign("u1") is None and model.assign("u2") is None
    model.run_billing(datetime(2026, 12, 5, 11, 59, tzinfo=UTC))
    assert model.status == "trialing"
    model.run_billing(datetime(2026, 12, 5, 12, tzinfo=UTC))
    assert (model.status, model.seats, len(model.assigned)) == ("trial_expired", 0, 2)
    assert model.assign("u3") == "no_active_plan"
    assert model.purchase(1, date(2026, 12, 5)) == "seats_assigned"
    assert model.purchase(2, date(2026, 12, 5)) is None
    # 27 of the 31 days of 2026-12-01..2027-01-01
    assert model.invoices[-1].total == round_half_up(2 * 1900 * 27, 31)
