"""The agent check's two forms answer alike: the statement the service sends straight to
PostgreSQL, and ``seats_agent_check`` (migration 0008), which it calls instead behind a
transaction pooler. Both run through ``Database.read_one`` as the service runs them, over
every case the answer distinguishes, so the function cannot drift from the statement.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete

from app.billing.periods import BillingCycle
from app.clock import TestClockRow
from app.db import Database
from app.directory.models import Account, Role, User
from app.seats.models import Assignment, Plan
from app.seats.repository import agent_check
from app.seats.status import PlanStatus
from tests.conftest import NOW, postgres_only

pytestmark = postgres_only

NO_PLAN, NO_ACCOUNT = "no-plan", "no-such-account"
USERS = {"adm": Role.PRIMARY_ADMIN, "agent": Role.USER, "plain": Role.ADMIN}


def _seed() -> list[object]:
    """An account per plan status and one without a plan, each with an admin, an agent and
    a user without a seat."""
    rows: list[object] = []
    for account_id in (*(f"plan-{s}" for s in PlanStatus), NO_PLAN):
        rows.append(
            Account(
                id=account_id,
                name=account_id,
                billing_cycle=BillingCycle.MONTHLY,
                billing_anchor=date(2026, 11, 1),
                payment_method="pm_card_visa",
                currency="USD",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        for user_id, role in USERS.items():
            rows.append(
                User(
                    account_id=account_id,
                    id=user_id,
                    email=f"{user_id}@example.com",
                    name=user_id,
                    role=role,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    for status in PlanStatus:
        account_id = f"plan-{status}"
        trial = status in (PlanStatus.TRIALING, PlanStatus.TRIAL_EXPIRED)
        rows.append(
            Plan(
                account_id=account_id,
                status=status,
                seats=5,
                assigned=1,
                trial_started_at=NOW - timedelta(days=14) if trial else None,
                trial_ends_at=NOW + timedelta(days=1) if trial else None,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        rows.append(
            Assignment(account_id=account_id, user_id="agent", assigned_at=NOW, assigned_by="adm")
        )
    return rows


async def test_agent_check_function_answers_as_the_statement_in_every_case(
    database_url: str,
) -> None:
    statement, function = Database(database_url), Database(database_url, pooler="transaction")
    try:
        async with statement.transaction() as session:
            for row in _seed():  # in order: the model does not know every foreign key
                session.add(row)
                await session.flush()
        answers = []
        for clock in (None, datetime(2026, 12, 24, 9, 30, tzinfo=UTC)):
            if clock is not None:
                async with statement.transaction() as session:
                    await session.execute(delete(TestClockRow))
                    session.add(TestClockRow(id=1, now=clock))
            for account_id in (*(f"plan-{s}" for s in PlanStatus), NO_PLAN, NO_ACCOUNT):
                for caller_id in ("adm", "plain", "agent", "nobody"):
                    for user_id in ("agent", "plain", "adm", "nobody"):
                        for stored in (False, True):
                            args = (account_id, caller_id, user_id)
                            expected = await agent_check(statement, *args, stored_clock=stored)
                            got = await agent_check(function, *args, stored_clock=stored)
                            assert got == expected, (args, stored, clock)
                            answers.append(expected)
    finally:
        await statement.dispose()
        await function.dispose()
    # The cases reach every answer the statement gives, not one repeated.
    found = [a for a in answers if a is not None]
    assert len(found) < len(answers)
    assert {a.plan_status for a in found} == {*PlanStatus, None}
    assert {a.caller_role for a in found} == {*Role, None}
    assert {(a.user_exists, a.is_agent) for a in found} == {
        (True, True),
        (True, False),
        (False, False),
    }
    assert {a.trial_ends_at is None for a in found} == {True, False}
    assert {a.stored_now for a in found} == {None, datetime(2026, 12, 24, 9, 30, tzinfo=UTC)}
