"""Agents: assigning and freeing seats (R5, R16's alerts on the way), the agent check and
the lists of agents and users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Caller, Principal, caller_of, check_account_scope
from app.clock import Clock
from app.config import Settings
from app.db import Database, DriverTransaction
from app.directory.models import Role
from app.entitlements import EntitlementCache
from app.errors import (
    Conflict,
    NoEmptySeat,
    NotAnAgent,
    NotFound,
    UserNotFound,
)
from app.ids import new_id
from app.ledger import repository as ledger
from app.pagination import next_cursor
from app.plan import repository as plans
from app.seats import alerts, repository, rules
from app.seats.schemas import (
    AccountUser,
    AgentCheck,
    AgentOut,
)
from app.seats.service import note_thresholds, plan_state
from app.seats.status import PlanStatus


async def lock_plan_as(
    session: AsyncSession, principal: Principal, account_id: str
) -> tuple[Caller, plans.LockedPlan]:
    """The caller and the account's plan, locked, in one statement: the seat writes' first
    lock (SPEC §7) and their role lookup. The answers of a separate lookup, in its order:
    404 for another account's path, 403 for a user not in the account, 404 for no account."""
    check_account_scope(principal, account_id)
    return _caller_with(
        principal, account_id, await plans.lock_plan_as(session, account_id, principal.subject)
    )


async def lock_plan_as_on(
    unit: DriverTransaction, principal: Principal, account_id: str
) -> tuple[Caller, plans.LockedPlan]:
    """``lock_plan_as`` in a driver transaction: the same statement and answers."""
    check_account_scope(principal, account_id)
    return _caller_with(
        principal, account_id, await plans.lock_plan_as_on(unit, account_id, principal.subject)
    )


def _caller_with(
    principal: Principal, account_id: str, plan: plans.LockedPlan | None
) -> tuple[Caller, plans.LockedPlan]:
    role = None if plan is None else plan.caller_role
    caller = caller_of(principal, account_id, account_exists=plan is not None, role=role)
    if plan is None:  # a user's role without a plan: no account is ever left so
        raise NotFound("No such account.")
    return caller, plan


def seat_event(
    account_id: str, type: str, actor: str, now: datetime, data: dict[str, object]
) -> repository.SeatEvent:
    return repository.SeatEvent(new_id("evt"), account_id, type, actor, now, data)


async def note_exhausted(
    session: AsyncSession, caller: Caller, user_id: str, now: datetime, state: rules.PlanState
) -> None:
    """R16: ``seats.exhausted`` for an assignment refused for want of an empty seat, at most
    once per account per hour, and kept although the request answers 409.

    The plan's lock is held: concurrent refusals of the account wait for it, and each sees
    the one before it, so the hour's first is the only one written. The event is committed
    here, before the refusal is raised (which rolls back the request's transaction); this
    transaction wrote nothing else (the refused assignment changed nothing).
    """
    after = now - alerts.EXHAUSTED_EVERY
    if await ledger.has_event_after(session, caller.account_id, "seats.exhausted", after):
        return
    await ledger.add_event(
        session,
        account_id=caller.account_id,
        type="seats.exhausted",
        actor=caller.actor,
        at=now,
        data={"user_id": user_id, "assigned": state.assigned, "seats": state.seats},
    )
    await session.commit()


async def assign(
    session: AsyncSession,
    principal: Principal,
    account_id: str,
    user_id: str,
    now: datetime,
    settings: Settings,
) -> tuple[AgentOut, bool]:
    """R5: give the user a seat; ``(agent, created)``. Assigning an agent again is a no-op."""
    caller, plan = await lock_plan_as(session, principal, account_id)
    caller.require_admin()
    # Judged now, raised only once the user is known to exist and hold no seat: the answers
    # keep their order (404 no such user, 200 already an agent, then the rules' 409s).
    refusal: Conflict | None = None
    state = plan_state(plan).at(now)
    try:
        rules.check_assign(state)
    except Conflict as exc:
        refusal = exc
    data = _assigned_data(user_id, plan.assigned)
    event = seat_event(account_id, "agent.assigned", caller.actor, now, data)
    seat = await repository.assign_seat(
        session,
        account_id,
        user_id,
        now=now,
        actor=caller.actor,
        allowed=refusal is None,
        event=event,
    )
    if not seat.user_exists:
        raise UserNotFound(f"No user {user_id!r} in this account.")
    if seat.assigned_at is not None and seat.assigned_by is not None:
        return AgentOut(
            user_id=user_id, assigned_at=seat.assigned_at, assigned_by=seat.assigned_by
        ), False
    if refusal is not None:
        if isinstance(refusal, NoEmptySeat):
            await note_exhausted(session, caller, user_id, now, state)
        raise refusal
    # The locked count and the write's answer say whether a threshold was crossed: only
    # then is anything more written (R16).
    before = alerts.usage(state)
    after = alerts.Usage(before.assigned + 1, before.seats)
    await note_thresholds(session, caller, now, settings, before, after)
    return AgentOut(user_id=user_id, assigned_at=now, assigned_by=caller.actor), True


async def assign_on(
    unit: DriverTransaction,
    principal: Principal,
    account_id: str,
    user_id: str,
    now: datetime,
    settings: Settings,
) -> tuple[AgentOut, bool] | None:
    """``assign`` in a driver transaction, for the assignments that write the seat and its
    event only. None, with nothing written, when R16 has more to write: a refusal (its
    ``seats.exhausted``) or a crossed threshold; the caller then runs ``assign`` in a session,
    which decides again under its own lock and answers in the same order."""
    caller, plan = await lock_plan_as_on(unit, principal, account_id)
    caller.require_admin()
    state = plan_state(plan).at(now)
    try:
        rules.check_assign(state)
    except Conflict:
        return None
    before = alerts.usage(state)
    if alerts.crossed(
        settings.alert_thresholds, before, alerts.Usage(before.assigned + 1, before.seats)
    ):
        return None
    event = seat_event(
        account_id, "agent.assigned", caller.actor, now, _assigned_data(user_id, plan.assigned)
    )
    seat = await repository.assign_seat_on(unit, account_id, user_id, now=now, event=event)
    return _assigned(user_id, seat, now, caller.actor)


async def unassign_on(
    unit: DriverTransaction, principal: Principal, account_id: str, user_id: str, now: datetime
) -> None:
    """``unassign`` in a driver transaction: the same statements and answers."""
    caller, plan = await lock_plan_as_on(unit, principal, account_id)
    caller.require_admin()
    event = seat_event(
        account_id, "agent.unassigned", caller.actor, now, _released_data(user_id, plan.assigned)
    )
    if not await repository.release_seat_on(unit, account_id, user_id, now=now, event=event):
        raise NotAnAgent(f"User {user_id!r} is not an agent.")


def _assigned_data(user_id: str, assigned: int) -> dict[str, object]:
    return {"user_id": user_id, "assigned_before": assigned, "assigned_after": assigned + 1}


def _released_data(user_id: str, assigned: int) -> dict[str, object]:
    return {"user_id": user_id, "assigned_before": assigned, "assigned_after": assigned - 1}


def _assigned(
    user_id: str, seat: repository.Seat, now: datetime, actor: str
) -> tuple[AgentOut, bool]:
    """The answer of an allowed assignment: ``(agent, created)``; 404 for no such user."""
    if not seat.user_exists:
        raise UserNotFound(f"No user {user_id!r} in this account.")
    if seat.assigned_at is not None and seat.assigned_by is not None:
        return AgentOut(
            user_id=user_id, assigned_at=seat.assigned_at, assigned_by=seat.assigned_by
        ), False
    return AgentOut(user_id=user_id, assigned_at=now, assigned_by=actor), True


async def unassign(
    session: AsyncSession, principal: Principal, account_id: str, user_id: str, now: datetime
) -> None:
    """R5: free the user's seat at once."""
    caller, plan = await lock_plan_as(session, principal, account_id)
    caller.require_admin()
    if not await release_seat(session, account_id, user_id, caller.actor, now, plan.assigned):
        raise NotAnAgent(f"User {user_id!r} is not an agent.")


async def release_seat(
    session: AsyncSession,
    account_id: str,
    user_id: str,
    actor: str,
    now: datetime,
    assigned: int,
    reason: str | None = None,
) -> bool:
    """Free ``user_id``'s seat if it holds one; False if it was not an agent.

    The caller holds the plan's lock and read ``assigned``, its agents, under it.
    """
    data = _released_data(user_id, assigned)
    if reason:
        data["reason"] = reason
    event = seat_event(account_id, "agent.unassigned", actor, now, data)
    return await repository.release_seat(session, account_id, user_id, now=now, event=event)


async def check_agent(
    db: Database,
    clock: Clock,
    cache: EntitlementCache,
    principal: Principal,
    account_id: str,
    user_id: str,
) -> AgentCheck:
    """The hot read: is this user an agent, and does the plan let agents work now?

    It authorizes the caller itself, from the same statement that answers (any user of the
    account and services may ask): one round trip instead of a role lookup first. The row is
    served from the worker's cache when it holds it (app/entitlements.py): the same checks
    then run on it, and the trial's end is compared with the clock's time on every request.
    """
    check_account_scope(principal, account_id)
    key = (principal.is_service, principal.subject, user_id)
    row: repository.AgentCheckRow | None = cache.get(account_id, key)
    stored_now = None
    if row is not None and clock.stored:
        known, stored_now = cache.get_shared()
        row = row if known else None
    if row is None:
        token = cache.token(account_id)
        row = await repository.agent_check(
            db, account_id, principal.subject, user_id, stored_clock=clock.stored
        )
        if row is not None:
            stored_now = row.stored_now
            # Only answers about users who exist, asked by a user of the account or a service:
            # what makes them change always notifies (a new user or account never does).
            if row.user_exists and (principal.is_service or row.caller_role is not None):
                cache.put(account_id, key, row, token)
                if clock.stored:
                    cache.put_shared(stored_now, token[0])
    role = None if row is None or row.caller_role is None else Role(row.caller_role)
    caller_of(principal, account_id, account_exists=row is not None, role=role)
    if row is None or not row.user_exists:
        raise UserNotFound(f"No user {user_id!r} in this account.")
    is_agent, status = bool(row.is_agent), row.plan_status
    active = is_agent and status is not None and PlanStatus(status).grants_access
    if status == PlanStatus.TRIALING and row.trial_ends_at is not None:
        # R10: the trial ends exactly then
        active = active and clock.now_from(stored_now) < row.trial_ends_at
    return AgentCheck(user_id=user_id, agent=is_agent, active=active)


async def list_agents(
    session: AsyncSession, caller: Caller, cursor: str | None, limit: int
) -> tuple[list[AgentOut], str | None]:
    rows = await repository.list_agents(session, caller.account_id, cursor, limit)
    rows, cursor_out = next_cursor(rows, limit, lambda a: (a.assigned_at, a.user_id))
    return [AgentOut.model_validate(a) for a in rows], cursor_out


async def list_users(
    session: AsyncSession, caller: Caller, cursor: str | None, limit: int
) -> tuple[list[AccountUser], str | None]:
    """The account's users, newest first, each with whether it holds a seat (whom to assign)."""
    caller.require_admin_or_service()
    rows = await repository.list_users(session, caller.account_id, cursor, limit)
    rows, cursor_out = next_cursor(rows, limit, lambda r: (r.created_at, r.user_id))
    return [
        AccountUser(user_id=r.user_id, name=r.name, email=r.email, role=r.role, agent=r.agent)
        for r in rows
    ], cursor_out
