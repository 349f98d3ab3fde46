"""The seat lifecycle: trial, quotes, removals and agents (SPEC R1-R5, R7, R8, R10, R11).

Each function opens with its guard clauses, locks the plan row before it reads a rule's
inputs (``app.plan.repository``), asks the rules (``rules``) and the plan's transitions
(``app.plan.transitions``), and only flushes: the caller's transaction commits. Purchases,
which must commit before they charge, live in ``app.purchases``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Caller, Principal, caller_of, check_account_scope
from app.billing.periods import BillingCycle
from app.billing.pricing import PriceChange, cycle_total, price_change
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.directory.models import Account, Role
from app.entitlements import EntitlementCache
from app.errors import Conflict, NotAnAgent, NotFound, UnsupportedCurrency, UserNotFound
from app.ids import new_id
from app.ledger import repository as ledger
from app.pagination import next_cursor
from app.plan import repository as plans
from app.plan import transitions
from app.seats import repository, rules
from app.seats.models import Plan, Quote
from app.seats.schemas import (
    AccountUser,
    AgentCheck,
    AgentOut,
    OutstandingInvoice,
    PeriodOut,
    PlanSummary,
    ProrationOut,
    QuoteOut,
    QuotePreview,
    TrialOut,
)
from app.seats.status import PlanStatus


def plan_state(plan: Plan | plans.LockedPlan) -> rules.PlanState:
    """What the rules need to know of a plan read from the database."""
    period = transitions.period_of(plan.period_start, plan.period_end)
    return rules.PlanState(
        status=plan.status,
        seats=plan.seats,
        assigned=plan.assigned,
        trial_used=plan.trial_started_at is not None,
        pending_seats=plan.pending_seats,
        period=period,
        cycle=plan.billing_cycle,
        trial_ends_at=plan.trial_ends_at,
    )


def unit_price(settings: Settings, currency: str) -> int:
    """The monthly seat price of ``currency`` (R13): refused when none is configured."""
    price = settings.price_for(currency)
    if price is None:
        raise UnsupportedCurrency(currency, sorted(settings.prices))
    return price


def summarize(
    plan: Plan,
    account: Account,
    settings: Settings,
    now: datetime,
    outstanding: OutstandingInvoice | None = None,
) -> PlanSummary:
    """The plan summary of ``GET .../conversations``, as the plan stands at ``now``, from the
    rows already read."""
    state = plan_state(plan).at(now)
    # Shown even when the currency lost its price (R18): the plan is then past due, and its
    # admins must see so rather than an error.
    price = settings.price_for(account.currency)
    # A paid plan is shown in the cycle it is billed under until its period ends (R12).
    cycle = (state.cycle if state.status.is_paid else None) or BillingCycle(account.billing_cycle)
    paid = state.paid_seats
    trial = None
    if plan.trial_started_at is not None and plan.trial_ends_at is not None:
        trial = TrialOut(
            seats=settings.trial_seats,
            started_at=plan.trial_started_at,
            ends_at=plan.trial_ends_at,
        )
    period = state.period if state.status.is_paid else None
    return PlanSummary(
        status=state.status,
        seats=state.seats,
        assigned=plan.assigned,
        available=state.available,
        trial=trial,
        billing_cycle=cycle,
        currency=account.currency,
        unit_price=price,
        monthly_total=None if price is None else paid * price,
        cycle_total=None if price is None else cycle_total(paid, price, cycle),
        current_period=PeriodOut(start=period.start, end=period.end) if period else None,
        next_renewal_at=datetime.combine(period.end, time(), UTC) if period else None,
        outstanding_invoice=outstanding,
    )


async def summary(
    session: AsyncSession, plan: Plan, account: Account, settings: Settings, now: datetime
) -> PlanSummary:
    """The plan summary, with the oldest unpaid renewal read from the ledger."""
    row = await ledger.oldest_outstanding_renewal(session, plan.account_id)
    outstanding = None if row is None else OutstandingInvoice(**row._asdict())
    return summarize(plan, account, settings, now, outstanding)


async def load(session: AsyncSession, account_id: str, *, lock: bool) -> tuple[Plan, Account]:
    """The account's plan (locked when ``lock``) and the account, in one statement."""
    found = await plans.plan_and_account(session, account_id, lock=lock)
    if found is None:
        raise NotFound("No such account.")
    return found


async def load_as(session: AsyncSession, caller: Caller) -> tuple[Plan, Account, Caller]:
    """The account's plan, locked, the account, and the caller with its role read after that
    lock, in one statement (R17): who may act is judged as of the change, not as of the
    request's arrival."""
    found = await plans.plan_account_and_role(session, caller.account_id, caller.subject)
    if found is None:
        raise NotFound("No such account.")
    plan, account, role = found
    return plan, account, caller.as_of_lock(role)


def price_purchase(
    state: rules.PlanState, account: Account, seats: int, today: date, settings: Settings
) -> PriceChange:
    """What moving to ``seats`` costs today: the one pricing of quotes and purchases (§3)."""
    period, cycle = rules.pricing_schedule(
        state, anchor=account.billing_anchor, cycle=BillingCycle(account.billing_cycle), today=today
    )
    return price_change(
        current_seats=state.seats,
        seats=seats,
        paid_seats=state.paid_seats,
        unit_price=unit_price(settings, account.currency),
        cycle=cycle,
        period=period,
        today=today,
    )


async def get_summary(
    session: AsyncSession, caller: Caller, settings: Settings, now: datetime
) -> PlanSummary:
    """The plan summary for any user of the account, and services."""
    plan, account = await load(session, caller.account_id, lock=False)
    return await summary(session, plan, account, settings, now)


async def start_trial(
    session: AsyncSession, caller: Caller, now: datetime, settings: Settings
) -> PlanSummary:
    """R3: the 20-seat trial, once per account."""
    plan, account, caller = await load_as(session, caller)
    caller.require_primary_admin()
    trial = rules.start_trial(
        plan_state(plan), now, seats=settings.trial_seats, days=settings.trial_days
    )
    before = plan.seats
    plans.apply(plan, transitions.start_trial(trial), now)
    await ledger.add_event(
        session,
        account_id=caller.account_id,
        type="trial.started",
        actor=caller.actor,
        at=now,
        data={"seats_before": before, "seats_after": plan.seats, "ends_at": trial.ends_at},
    )
    return await summary(session, plan, account, settings, now)


def price_quote(
    plan: Plan, account: Account, seats: int, now: datetime, settings: Settings
) -> QuotePreview:
    """R8: what a move to ``seats`` costs at ``now``; the one pricing of quotes and previews."""
    state = plan_state(plan).at(now)
    change = price_purchase(state, account, seats, now.date(), settings)
    return QuotePreview(
        current_seats=state.seats,
        seats=seats,
        change=change.change,
        currency=account.currency,
        unit_price=change.unit_price,
        billing_cycle=change.billing_cycle,
        monthly_total=change.monthly_total,
        cycle_total=change.cycle_total,
        due_now=change.due_now,
        proration=ProrationOut(
            period_start=change.proration.period_start,
            period_end=change.proration.period_end,
            days_remaining=change.proration.days_remaining,
            days_in_period=change.proration.days_in_period,
        ),
        allowed=rules.check_decrease_allowed(state, seats),
        assigned=plan.assigned,
    )


async def preview_quote(
    db: Database, clock: Clock, caller: Caller, seats: int, settings: Settings
) -> QuotePreview:
    """R8 for a slider: the quote's body for ``seats``, computed and not stored.

    One read, outside a transaction on PostgreSQL: nothing is locked nor written, as for the
    quote itself (``create_quote`` reads without a lock too)."""
    caller.require_admin_or_service()
    async with db.read() as session:
        now = await clock.now(session)
        plan, account = await load(session, caller.account_id, lock=False)
    return price_quote(plan, account, seats, now, settings)


async def create_quote(
    session: AsyncSession, caller: Caller, seats: int, now: datetime, settings: Settings
) -> QuoteOut:
    """R8: price a new total. Stores the quote (so a purchase can confirm it) and nothing else."""
    caller.require_admin()
    plan, account = await load(session, caller.account_id, lock=False)
    priced = price_quote(plan, account, seats, now, settings)
    quote = Quote(
        id=new_id("quo"),
        account_id=caller.account_id,
        current_seats=priced.current_seats,
        seats=seats,
        unit_price=priced.unit_price,
        currency=priced.currency,
        billing_cycle=priced.billing_cycle,
        period_start=priced.proration.period_start,
        period_end=priced.proration.period_end,
        due_now=priced.due_now,
        created_by=caller.actor,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.quote_ttl_seconds),
    )
    session.add(quote)
    await session.flush()
    # Quotes are stored and an admin may ask for many: keep the newest few, so nobody can
    # fill the table (a purchase naming a dropped quote answers 404 quote_not_found).
    await repository.trim_quotes(session, caller.account_id, settings.max_live_quotes)
    return QuoteOut(id=quote.id, expires_at=quote.expires_at, **dict(priced))


async def remove_seats(
    session: AsyncSession, caller: Caller, seats: int, now: datetime, settings: Settings
) -> PlanSummary:
    """R4, R7: lower the total at once; only empty seats go, and nothing is refunded."""
    plan, account, caller = await load_as(session, caller)
    caller.require_primary_admin()
    rules.check_removal(plan_state(plan).at(now), seats)
    before = plan.seats
    plans.apply(plan, transitions.lower(seats), now)
    await ledger.add_event(
        session,
        account_id=caller.account_id,
        type="seats.removed",
        actor=caller.actor,
        at=now,
        data={"seats_before": before, "seats_after": seats},
    )
    return await summary(session, plan, account, settings, now)


async def lock_plan_as(
    session: AsyncSession, principal: Principal, account_id: str
) -> tuple[Caller, plans.LockedPlan]:
    """The caller and the account's plan, locked, in one statement: the seat writes' first
    lock (SPEC §7) and their role lookup. The answers of a separate lookup, in its order:
    404 for another account's path, 403 for a user not in the account, 404 for no account."""
    check_account_scope(principal, account_id)
    plan = await plans.lock_plan_as(session, account_id, principal.subject)
    role = None if plan is None else plan.caller_role
    caller = caller_of(principal, account_id, account_exists=plan is not None, role=role)
    if plan is None:  # a user's role without a plan: no account is ever left so
        raise NotFound("No such account.")
    return caller, plan


def seat_event(
    account_id: str, type: str, actor: str, now: datetime, data: dict[str, object]
) -> repository.SeatEvent:
    return repository.SeatEvent(new_id("evt"), account_id, type, actor, now, data)


async def assign(
    session: AsyncSession, principal: Principal, account_id: str, user_id: str, now: datetime
) -> tuple[AgentOut, bool]:
    """R5: give the user a seat; ``(agent, created)``. Assigning an agent again is a no-op."""
    caller, plan = await lock_plan_as(session, principal, account_id)
    caller.require_admin()
    # Judged now, raised only once the user is known to exist and hold no seat: the answers
    # keep their order (404 no such user, 200 already an agent, then the rules' 409s).
    refusal: Conflict | None = None
    try:
        rules.check_assign(plan_state(plan).at(now))
    except Conflict as exc:
        refusal = exc
    data: dict[str, object] = {
        "user_id": user_id,
        "assigned_before": plan.assigned,
        "assigned_after": plan.assigned + 1,
    }
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
        raise refusal
    return AgentOut(user_id=user_id, assigned_at=now, assigned_by=caller.actor), True


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
    data: dict[str, object] = {
        "user_id": user_id,
        "assigned_before": assigned,
        "assigned_after": assigned - 1,
    }
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
