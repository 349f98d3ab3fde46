"""A decrease scheduled for the end of the paid period (R15): scheduling, canceling and
recording it on the locked plan, each with its audit event."""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

from sqlalchemy import (
    Table,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.directory.models import User
from app.ledger import repository as ledger
from app.ledger.models import Event
from app.plan import repository as plans
from app.plan import transitions
from app.seats.models import Assignment, Plan
from app.seats.rules import effective_at, instant_text

# Core tables, not ORM entities: the seat writes below run on the session's connection, with
# no unit of work (and so no flush) in between.
_USER = cast(Table, User.__table__)
_ASSIGNMENT = cast(Table, Assignment.__table__)
_EVENT = cast(Table, Event.__table__)


async def schedule_decrease(
    session: AsyncSession, plan: Plan, seats: int, period_end: date, *, now: datetime, actor: str
) -> None:
    """Schedule ``seats`` for ``period_end`` on the locked plan, replacing any schedule, with
    the event ``seats.decrease_scheduled``."""
    replaced = plan.scheduled_seats
    plans.apply(plan, transitions.schedule_decrease(seats, period_end), now)
    await ledger.add_event(
        session,
        account_id=plan.account_id,
        type="seats.decrease_scheduled",
        actor=actor,
        at=now,
        data={
            "seats": plan.seats,
            "scheduled_seats": seats,
            "effective_at": instant_text(effective_at(period_end)),
            "replaced_seats": replaced,
        },
    )


async def drop_scheduled_change(
    session: AsyncSession, plan: Plan, *, now: datetime, actor: str, reason: str
) -> bool:
    """Cancel the locked plan's scheduled decrease, if any, with ``seats.decrease_canceled``
    saying why (``canceled``, ``purchase``, ``removed``, ``plan_canceled``)."""
    if plan.scheduled_seats is None or plan.scheduled_for is None:
        return False
    await _canceled(
        session,
        plan.account_id,
        plan.seats,
        plan.scheduled_seats,
        plan.scheduled_for,
        now=now,
        actor=actor,
        reason=reason,
    )
    plans.apply(plan, transitions.drop_schedule(), now)
    return True


async def cancel_scheduled_change(
    session: AsyncSession,
    account_id: str,
    seats: int,
    scheduled_seats: int,
    scheduled_for: date,
    *,
    now: datetime,
    actor: str,
    reason: str,
) -> None:
    """``drop_scheduled_change`` for a caller that holds the plan's lock and read its schedule
    but has no ORM row of it (a purchase's settlement); ``seats`` is the plan's total after
    that caller's change."""
    await plans.write(session, account_id, transitions.drop_schedule(), now)
    await _canceled(
        session,
        account_id,
        seats,
        scheduled_seats,
        scheduled_for,
        now=now,
        actor=actor,
        reason=reason,
    )


async def _canceled(
    session: AsyncSession,
    account_id: str,
    seats: int,
    scheduled_seats: int,
    scheduled_for: date,
    *,
    now: datetime,
    actor: str,
    reason: str,
) -> None:
    await ledger.add_event(
        session,
        account_id=account_id,
        type="seats.decrease_canceled",
        actor=actor,
        at=now,
        data={
            "seats": seats,
            "scheduled_seats": scheduled_seats,
            "effective_at": instant_text(effective_at(scheduled_for)),
            "reason": reason,
        },
    )


async def apply_scheduled_change(
    session: AsyncSession, plan: Plan, *, now: datetime, actor: str
) -> bool:
    """Record on the locked plan the decrease that took effect at its period's end (R15):
    its total becomes the scheduled one, with ``seats.decreased``. The caller judged it due
    (``rules.decrease_due``)."""
    if plan.scheduled_seats is None or plan.scheduled_for is None:
        return False
    before = plan.seats
    at = effective_at(plan.scheduled_for)
    change = transitions.apply_schedule(plan.scheduled_seats)
    assert change is not None  # a schedule was checked above
    plans.apply(plan, change, now)
    await ledger.add_event(
        session,
        account_id=plan.account_id,
        type="seats.decreased",
        actor=actor,
        at=now,
        data={"seats_before": before, "seats_after": plan.seats, "effective_at": instant_text(at)},
    )
    return True
