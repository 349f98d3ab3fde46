"""The billing run's reminders (R16): ``trial.ending`` 3 days before a trial ends and
``renewal.upcoming`` 7 days before a renewal, with the amount it is expected to charge.

Each is owed from its mark until the trial's end or the renewal: a run that starts late
(after the mark) still sends it, and a plan that starts inside the window (a trial shorter
than 3 days, a purchase 1 day before the anchor) is owed it at the next run. Each is sent
once per trial and per renewal: the ``reminder`` row's primary key (account, type, date) is
claimed first (INSERT ... ON CONFLICT DO NOTHING), and only the run whose insert wrote the row
writes the event, in the same transaction. Several runs at once then send one, whatever
their interleaving. The plan is locked (claimed by the run) while its reminder is decided.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import exists
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.periods import BillingCycle
from app.billing_run.models import Reminder
from app.config import Settings
from app.directory.models import Account
from app.ledger import repository as ledger
from app.seats import alerts
from app.seats.models import Plan
from app.seats.service import plan_state
from app.seats.status import PlanStatus
from app.upsert import insert_new

SYSTEM = "system:billing"
TRIAL_ENDING = "trial.ending"
RENEWAL_UPCOMING = "renewal.upcoming"


def trials_to_remind(now: datetime) -> list[Any]:
    """The plans that may owe ``trial.ending`` (the run re-checks each under its lock)."""
    sent = exists().where(Reminder.account_id == Plan.account_id, Reminder.type == TRIAL_ENDING)
    return [
        Plan.status == PlanStatus.TRIALING,
        Plan.trial_ends_at > now,
        Plan.trial_ends_at <= now + alerts.TRIAL_ENDING_LEAD,
        ~sent,
    ]


def renewals_to_remind(now: datetime) -> list[Any]:
    """The plans that may owe ``renewal.upcoming``: active, renewing within 7 days."""
    sent = exists().where(
        Reminder.account_id == Plan.account_id,
        Reminder.type == RENEWAL_UPCOMING,
        Reminder.due_on == Plan.period_end,
    )
    return [
        Plan.status == PlanStatus.ACTIVE,
        Plan.period_end > now.date(),
        Plan.period_end <= (now + alerts.RENEWAL_UPCOMING_LEAD).date(),
        ~sent,
    ]


async def _claim(
    session: AsyncSession, account_id: str, type: str, due_on: date, now: datetime
) -> bool:
    """Mark the reminder sent; False when a run already did (nothing is written then)."""
    conn = await session.connection()
    values = {"account_id": account_id, "type": type, "due_on": due_on, "sent_at": now}
    statement = insert_new(Reminder.__table__, conn.dialect.name, values).returning(
        Reminder.account_id
    )
    return (await session.execute(statement)).first() is not None


async def remind_trial_ending(session: AsyncSession, plan: Plan, now: datetime) -> bool:
    """Send ``trial.ending`` if the locked ``plan`` owes it; True if sent now."""
    state = plan_state(plan).at(now)
    if not alerts.trial_ending_due(state, now) or state.trial_ends_at is None:
        return False
    ends_at = state.trial_ends_at
    if not await _claim(session, plan.account_id, TRIAL_ENDING, ends_at.date(), now):
        return False
    await ledger.add_event(
        session,
        account_id=plan.account_id,
        type=TRIAL_ENDING,
        actor=SYSTEM,
        at=now,
        data={"ends_at": ends_at, "seats": state.seats, "assigned": state.assigned},
    )
    return True


async def remind_renewal(
    session: AsyncSession, plan: Plan, account: Account, now: datetime, settings: Settings
) -> bool:
    """Send ``renewal.upcoming`` if the locked ``plan`` owes it; True if sent now. A currency
    without a price has no expected amount: the renewal job reports that plan (R18)."""
    price = settings.price_for(account.currency)
    if price is None:
        return False
    state = plan_state(plan).at(now)
    renewal = alerts.next_renewal(
        state,
        anchor=account.billing_anchor,
        cycle=BillingCycle(account.billing_cycle),
        unit_price=price,
    )
    if renewal is None or not alerts.renewal_upcoming_due(renewal, now):
        return False
    if not await _claim(session, plan.account_id, RENEWAL_UPCOMING, renewal.at.date(), now):
        return False
    await ledger.add_event(
        session,
        account_id=plan.account_id,
        type=RENEWAL_UPCOMING,
        actor=SYSTEM,
        at=now,
        data={
            "renews_at": renewal.at,
            "seats": renewal.seats,
            "amount": renewal.amount,
            "currency": account.currency,
            "billing_cycle": account.billing_cycle,
        },
    )
    return True
