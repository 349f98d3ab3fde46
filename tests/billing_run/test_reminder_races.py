"""R16: ``trial.ending`` and ``renewal.upcoming`` are sent once each even when several billing
runs overlap: two `seats billing run` processes at once, in small batches so that they
interleave, on the same due plans. Checked in SQL afterwards, and with `seats verify`.

PostgreSQL only: several runs at once is what cron on several hosts does (SQLite has one
writer, and its runs serialize).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.billing_fixture import (
    LoopbackPayments,
    billing_env,
    run_billing,
    seed_due_accounts,
    set_test_clock,
)
from tests.billing_run.conftest import assert_ran_clean, assert_verify_passes
from tests.conftest import Api, postgres_only

pytestmark = postgres_only

TRIALS = 20
RENEWALS = 300
TRIALS_STARTED = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # they end 2026-12-02 12:00
RUN_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # within 3 days of those, 7 of 2026-12-01


async def test_r16_reminders_are_sent_once_each_even_when_several_runs_overlap(
    database_url: str,
    payments: LoopbackPayments,
    billing_api: Api,
    sql: Callable[..., Any],
) -> None:
    accounts = await seed_due_accounts(database_url, RENEWALS)  # renew 2026-12-01
    await billing_api.set_clock(TRIALS_STARTED)
    for i in range(TRIALS):
        account_id = f"trial{i:03d}"
        assert (await billing_api.put_account(account_id)).status_code == 201
        assert (await billing_api.put_user(account_id, "owner", "primary_admin")).status_code == 201
        assert (await billing_api.start_trial(account_id, "owner")).status_code == 201
    await set_test_clock(database_url, RUN_AT)

    env = billing_env(database_url, payments.url, SEATS_BILLING_BATCH_SIZE="7")
    reports = [assert_ran_clean(r) for r in run_billing([env, env])]

    duplicated = await sql(
        "SELECT account_id, type FROM event WHERE type IN ('trial.ending', 'renewal.upcoming') "
        "GROUP BY account_id, type HAVING COUNT(*) > 1"
    )
    assert duplicated == []
    sent = await sql(
        "SELECT type, COUNT(*) FROM event WHERE type IN ('trial.ending', 'renewal.upcoming') "
        "GROUP BY type ORDER BY type"
    )
    assert [tuple(row) for row in sent] == [
        ("renewal.upcoming", RENEWALS),
        ("trial.ending", TRIALS),
    ]
    [(marks,)] = await sql("SELECT COUNT(*) FROM reminder")
    assert marks == RENEWALS + TRIALS
    # The reports add up to what was sent: no reminder counted by both runs.
    assert sum(r["trial_reminders_sent"] for r in reports) == TRIALS, reports
    assert sum(r["renewal_reminders_sent"] for r in reports) == RENEWALS, reports
    # Each renewal's expected amount is what its renewal will charge (R9).
    amounts = await sql(
        "SELECT account_id, CAST(data->>'amount' AS BIGINT) FROM event "
        "WHERE type = 'renewal.upcoming'"
    )
    assert dict(amounts) == {a.account_id: a.renewal_total for a in accounts}
    assert_verify_passes(database_url)
