"""SPEC §7 "The billing run scales out", R9: one run renews everything that is due, and several
runs at once share the work without renewing or charging anything twice.

PostgreSQL only: a day's renewals of 1,500 accounts is a production load, and several runs at
once is what cron on several hosts does (SQLite has one writer).
"""

from __future__ import annotations

from bench.billing_fixture import (
    RENEWAL_RUN_AT,
    LoopbackPayments,
    billing_env,
    renewal_stats,
    renewals_collected,
    run_billing,
    seed_due_accounts,
    set_test_clock,
)
from tests.billing_run.conftest import (
    RunBilling,
    assert_captured_equals_paid,
    assert_ran_clean,
    assert_verify_passes,
)
from tests.conftest import postgres_only
from tests.live import free_port

pytestmark = postgres_only


async def test_one_run_renews_every_due_account(
    database_url: str, payments: LoopbackPayments, billing_run: RunBilling
) -> None:
    payments.latency = 0.002
    accounts = await seed_due_accounts(database_url, 1500)
    await set_test_clock(database_url, RENEWAL_RUN_AT)

    report = assert_ran_clean(billing_run())

    stats = await renewal_stats(database_url)
    assert stats.due == 1500
    # No cap: every due account has its renewal for the next period, paid, exactly once.
    assert stats.invoiced == 1500, f"{stats.invoiced} of 1500 accounts invoiced"
    assert stats.paid == 1500, f"{stats.paid} of 1500 accounts renewed"
    assert stats.duplicated_periods == 0
    assert stats.plans_renewed == 1500
    assert renewals_collected(report) == 1500, report
    # One gateway call per renewal, each for the amount R9 says.
    assert payments.total_calls == 1500
    assert payments.keys_sent_more_than_once() == {}
    expected = sorted(a.renewal_total for a in accounts)
    assert sorted(stats.paid_by_charge.values()) == expected
    await assert_captured_equals_paid(database_url, payments)


async def test_concurrent_runs_renew_each_exactly_once(
    database_url: str, payments: LoopbackPayments
) -> None:
    # A little latency, so that the runs really overlap on the gateway.
    payments.latency = 0.005
    accounts = await seed_due_accounts(database_url, 600)
    await set_test_clock(database_url, RENEWAL_RUN_AT)

    results = run_billing([billing_env(database_url, payments.url)] * 3)

    reports = [assert_ran_clean(r) for r in results]
    stats = await renewal_stats(database_url)
    assert stats.duplicated_periods == 0
    assert stats.invoiced == stats.paid == len(accounts), stats
    # Each gateway key was sent once, from one place: never two runs charging one invoice.
    assert payments.keys_sent_concurrently() == {}
    assert payments.keys_sent_more_than_once() == {}
    assert payments.total_calls == len(accounts)
    # The reports add up to the work done: no renewal counted by two runs.
    assert sum(renewals_collected(r) or 0 for r in reports) == len(accounts), reports
    await assert_captured_equals_paid(database_url, payments)
    assert_verify_passes(database_url)


async def test_a_run_with_the_gateway_down_exits_non_zero_and_charges_nothing_twice(
    database_url: str, payments: LoopbackPayments, billing_run: RunBilling
) -> None:
    """An item that needs an operator (the payments service unreachable) makes the run exit
    non-zero; the next run, with the service back, renews everything once."""
    await seed_due_accounts(database_url, 20)
    await set_test_clock(database_url, RENEWAL_RUN_AT)
    down = billing_run(SEATS_PAYMENTS_URL=f"http://127.0.0.1:{free_port()}")
    assert down.returncode != 0, down.describe()
    stats = await renewal_stats(database_url)
    assert stats.paid == 0

    assert_ran_clean(billing_run())
    stats = await renewal_stats(database_url)
    assert stats.paid == stats.invoiced == 20
    assert stats.duplicated_periods == 0
    assert payments.total_calls == 20
    await assert_captured_equals_paid(database_url, payments)
    assert_verify_passes(database_url)


async def test_a_run_survives_an_item_that_raises(
    database_url: str, payments: LoopbackPayments, billing_run: RunBilling
) -> None:
    """One renewal whose charge cannot be recorded (the payments service answers an id longer
    than the column: the database raises) is isolated: counted and named in the report, the
    run exits non-zero for an operator, and every other due account is renewed."""
    payments.overlong_id_methods = {"pm_card_overlong"}
    # Seeded first, so that a run that stops at the first failure renews nothing after it.
    (bad,) = await seed_due_accounts(
        database_url, 1, prefix="a0bad", payment_method="pm_card_overlong"
    )
    good = await seed_due_accounts(database_url, 40)
    await set_test_clock(database_url, RENEWAL_RUN_AT)

    result = billing_run()

    assert result.returncode != 0, result.describe()
    assert result.report is not None, result.describe()
    # Named: by its account or by its invoice (the gateway key of its first attempt).
    names = {bad.account_id} | {
        c["idempotency_key"] for c in payments.charges if len(c["id"]) > 200
    }
    assert any(name in result.stdout for name in names), result.describe()
    stats = await renewal_stats(database_url)
    assert stats.invoiced == len(good) + 1
    assert stats.paid == len(good), result.describe()
