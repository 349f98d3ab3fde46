"""The seat lifecycle: trial, quotes, removals, scheduled decreases and agents (SPEC R1-R5,
R7, R8, R10, R11, R15).

Each function opens with its guard clauses, locks the plan row before it reads a rule's
inputs (``app.plan.repository``), asks the rules (``rules``) and the plan's transitions
(``app.plan.transitions``), and only flushes: the caller's transaction commits. Purchases,
which must commit before they charge, live in ``app.purchases``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Caller
from app.billing.periods import BillingCycle, Period, renewal_after
from app.billing.pricing import PriceChange, cycle_total, price_change, renewal_amount
from app.clock import Clock
from app.collection.policy import dunning_ends_at
from app.config import Settings
from app.db import Database
from app.directory.models import Account
from app.errors import (
    NotFound,
    UnsupportedCurrency,
)
from app.ids import new_id
from app.ledger import repository as ledger
from app.plan import repository as plans
from app.plan import transitions
from app.seats import alerts, repository, rules, schedules
from app.seats.models import Plan, Quote
from app.seats.schemas import (
    Alert,
    CallerOut,
    Effective,
    OutstandingInvoice,
    PeriodOut,
    PersonOut,
    PlanSummary,
    ProrationOut,
    QuoteOut,
    QuotePreview,
    ScheduledChange,
    TrialOut,
)


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
        scheduled_seats=plan.scheduled_seats,
        scheduled_for=plan.scheduled_for,
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
    renewal = None
    if price is not None:
        renewal = alerts.next_renewal(
            state,
            anchor=account.billing_anchor,
            cycle=BillingCycle(account.billing_cycle),
            unit_price=price,
        )
    facts = alerts.alerts(state, now, settings.alert_thresholds, renewal)
    when = state.scheduled_at
    scheduled = (
        ScheduledChange(seats=state.scheduled_seats, effective_at=when)
        if state.scheduled_seats is not None and when is not None
        else None
    )
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
        trial_seats=settings.trial_seats,
        alerts=[Alert(type=f.type, threshold=f.threshold, at=f.at, amount=f.amount) for f in facts],
        scheduled_change=scheduled,
    )


async def summary(
    session: AsyncSession,
    plan: Plan,
    account: Account,
    settings: Settings,
    now: datetime,
    caller: Caller | None = None,
) -> PlanSummary:
    """The plan summary, with the oldest unpaid renewal read from the ledger; with a user
    ``caller``, also who they are and who the primary admin is."""
    row = await ledger.oldest_outstanding_renewal(session, plan.account_id)
    outstanding = (
        None
        if row is None
        else OutstandingInvoice(
            **row._asdict(), cancels_at=dunning_ends_at(row.due_since, settings.dunning_days)
        )
    )
    result = summarize(plan, account, settings, now, outstanding)
    if caller is not None and not caller.is_service:
        me, primary = await repository.caller_and_primary_admin(
            session, plan.account_id, caller.subject
        )
        if me is not None and me.role.is_admin:
            result.payment_method = account.payment_method
        if me is not None:
            result.caller = CallerOut(
                user_id=me.user_id, name=me.name, role=me.role, agent=me.agent
            )
        if primary is not None:
            result.primary_admin = PersonOut(user_id=primary.user_id, name=primary.name)
    return result


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
    return await summary(session, plan, account, settings, now, caller)


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
    return await summary(session, plan, account, settings, now, caller)


def price_quote(
    plan: Plan,
    account: Account,
    seats: int,
    now: datetime,
    settings: Settings,
    effective: Effective = Effective.NOW,
) -> QuotePreview:
    """R8: what a move to ``seats`` costs at ``now``; the one pricing of quotes and previews.

    It also says when the total takes effect and what the next renewal will invoice for it:
    for a decrease scheduled for the period's end (R15) nothing changes now, and the renewal
    at that end bills the new total."""
    state = plan_state(plan).at(now)
    change = price_purchase(state, account, seats, now.date(), settings)
    takes_effect = now
    if effective is Effective.PERIOD_END:
        takes_effect = rules.quoted_decrease_at(state, seats)
    # The renewal that follows the priced period, in the account's schedule of now (R12).
    priced = Period(change.proration.period_start, change.proration.period_end)
    cycle = BillingCycle(account.billing_cycle)
    renewal = renewal_after(account.billing_anchor, cycle, priced)
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
        effective=effective,
        effective_at=takes_effect,
        next_renewal_at=rules.effective_at(priced.end),
        next_renewal_total=renewal_amount(seats, change.unit_price, cycle, renewal),
    )


async def preview_quote(
    db: Database,
    clock: Clock,
    caller: Caller,
    seats: int,
    settings: Settings,
    effective: Effective = Effective.NOW,
) -> QuotePreview:
    """R8 for a slider: the quote's body for ``seats``, computed and not stored.

    One read, outside a transaction on PostgreSQL: nothing is locked nor written, as for the
    quote itself (``create_quote`` reads without a lock too)."""
    caller.require_admin_or_service()
    async with db.read() as session:
        now = await clock.now(session)
        plan, account = await load(session, caller.account_id, lock=False)
    return price_quote(plan, account, seats, now, settings, effective)


async def create_quote(
    session: AsyncSession,
    caller: Caller,
    seats: int,
    now: datetime,
    settings: Settings,
    effective: Effective = Effective.NOW,
) -> QuoteOut:
    """R8: price a new total. Stores the quote (so a purchase can confirm it) and nothing else."""
    caller.require_admin()
    plan, account = await load(session, caller.account_id, lock=False)
    priced = price_quote(plan, account, seats, now, settings, effective)
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
    session: AsyncSession,
    caller: Caller,
    seats: int,
    now: datetime,
    settings: Settings,
    effective: Effective = Effective.NOW,
) -> PlanSummary:
    """R4, R7: lower the total at once; only empty seats go, and nothing is refunded.
    R15: or schedule it for the end of the paid period (``effective``)."""
    plan, account, caller = await load_as(session, caller)
    caller.require_primary_admin()
    state = plan_state(plan)
    if rules.decrease_due(state, now):
        # Past its instant, a scheduled decrease is the total: recorded before anything else.
        await schedules.apply_scheduled_change(session, plan, now=now, actor=caller.actor)
        state = plan_state(plan)
    if effective is Effective.PERIOD_END:
        period_end = rules.check_schedule_decrease(state, seats, now.date())
        await schedules.schedule_decrease(
            session, plan, seats, period_end, now=now, actor=caller.actor
        )
        return await summary(session, plan, account, settings, now, caller)
    rules.check_removal(state.at(now), seats)
    if not rules.schedule_survives_removal(state, seats):
        await schedules.drop_scheduled_change(
            session, plan, now=now, actor=caller.actor, reason="removed"
        )
    state = state.at(now)
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
    # A lower total raises usage: 10 of 12 assigned becomes 10 of 10 (R16).
    after = alerts.Usage(plan.assigned, seats)
    await note_thresholds(session, caller, now, settings, alerts.usage(state), after)
    return await summary(session, plan, account, settings, now, caller)


async def cancel_scheduled_change(session: AsyncSession, caller: Caller, now: datetime) -> None:
    """R15: cancel the scheduled decrease (primary admin). Refused when none is scheduled,
    which includes one whose instant has passed: it has taken effect and cannot be undone."""
    plan, _, caller = await load_as(session, caller)
    caller.require_primary_admin()
    rules.check_cancel_schedule(plan_state(plan).at(now))
    await schedules.drop_scheduled_change(
        session, plan, now=now, actor=caller.actor, reason="canceled"
    )


async def note_thresholds(
    session: AsyncSession,
    caller: Caller,
    now: datetime,
    settings: Settings,
    before: alerts.Usage,
    after: alerts.Usage,
) -> None:
    """R16: a ``seats.threshold_reached`` event for each threshold the change crossed upwards
    (``app.seats.alerts``); nothing at all, and no round trip, when it crossed none."""
    for threshold in alerts.crossed(settings.alert_thresholds, before, after):
        await ledger.add_event(
            session,
            account_id=caller.account_id,
            type="seats.threshold_reached",
            actor=caller.actor,
            at=now,
            data={"threshold": threshold, "assigned": after.assigned, "seats": after.seats},
        )
