"""The plan row's one reader-for-update and one writer: loads and locks it, writes the
``Change`` each event makes (``app.plan.transitions``) and the count of its agents.

Lock order (SPEC §7): the plan is the first lock a transaction takes on an account, before
the account row or any other (``app.seats.members`` tells the whole order). Every lock here
takes it first: ``lock_plan`` alone; ``lock_plan_as`` with the caller's role; the plan and its
account (``plan_and_account``); a batch of plans in account order (``lock_plans_of``,
``claim_plans``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    Table,
    Update,
    bindparam,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.billing.periods import BillingCycle
from app.db import DriverTransaction, PreparedStatement
from app.directory.models import Account, Role, User
from app.ledger.models import Invoice
from app.plan.transitions import Change, open_plan
from app.seats.models import Plan
from app.seats.status import PlanStatus

# Core tables, not ORM entities: the seat writes run on the session's connection, with no unit
# of work (and so no flush) in between.
_PLAN = cast(Table, Plan.__table__)
_USER = cast(Table, User.__table__)
_INVOICE = cast(Table, Invoice.__table__)


# --- Loads and locks -------------------------------------------------------------------------


async def lock_plan(session: AsyncSession, account_id: str) -> Plan | None:
    """The plan, locked until the transaction ends (SELECT ... FOR UPDATE).

    Every seat-changing operation takes this lock before it checks a rule: two requests
    can then never both see the same empty seat, nor both raise or lower the same total.
    """
    return await session.scalar(select(Plan).where(Plan.account_id == account_id).with_for_update())


class LockedPlan(NamedTuple):
    """The plan's rule inputs, locked, and the role of the caller in its account."""

    status: PlanStatus
    seats: int
    assigned: int
    trial_started_at: datetime | None
    trial_ends_at: datetime | None
    pending_seats: int | None
    period_start: date | None
    period_end: date | None
    billing_cycle: BillingCycle | None
    scheduled_seats: int | None
    scheduled_for: date | None
    caller_role: Role | None


# The caller's row is locked after the plan (FOR SHARE, the lock order of SPEC §7): the lock
# makes PostgreSQL read the row as it is once the plan's lock is granted, not as it was when the
# statement started waiting for it (a primary admin demoted meanwhile is one no more, R17), and
# it holds off any role change until this transaction ends. The inner join is what allows the
# lock (the nullable side of an outer join cannot be locked); a caller with no row in the
# account (a service, a stranger) is looked up by ``_LOCK_PLAN_ALONE`` instead.
CALLER_LOCK = "FOR SHARE OF caller"


def _lock_plan_as_statement(*, as_caller: bool) -> Select[Any]:
    caller = _USER.alias("caller")
    plan = _PLAN.c
    columns = [
        plan.status,
        plan.seats,
        plan.assigned,
        plan.trial_started_at,
        plan.trial_ends_at,
        plan.pending_seats,
        plan.period_start,
        plan.period_end,
        plan.billing_cycle,
        plan.scheduled_seats,
        plan.scheduled_for,
    ]
    where = plan.account_id == bindparam("account_id", type_=String)
    if not as_caller:
        return select(*columns).where(where).with_for_update(of=_PLAN)
    return (
        select(*columns, caller.c.role)
        .select_from(
            _PLAN.join(
                caller,
                (caller.c.account_id == plan.account_id)
                & (caller.c.id == bindparam("caller_id", type_=String)),
            )
        )
        .where(where)
        .with_for_update(of=_PLAN)
        .suffix_with(CALLER_LOCK, dialect="postgresql")
    )


_LOCK_PLAN_AS = _lock_plan_as_statement(as_caller=True)
_LOCK_PLAN_ALONE = _lock_plan_as_statement(as_caller=False)


async def lock_plan_as(session: AsyncSession, account_id: str, caller_id: str) -> LockedPlan | None:
    """``lock_plan`` and the caller's role in one statement (None: no such plan).

    The same first lock as ``lock_plan`` (SPEC §7). The role is the one of the moment the
    plan's lock is granted (R17). The rows a seat write decides on are read by the write
    itself, after the lock (``app.seats.repository.assign_seat``).
    """
    conn = await session.connection()
    params = {"account_id": account_id, "caller_id": caller_id}
    row = (await conn.execute(_LOCK_PLAN_AS, params)).first()
    if row is not None:
        return LockedPlan(*row)
    # Not a user of the account, or no plan: the plan alone, and no role, whatever a user
    # added since the first statement may have (it is refused either way).
    row = (await conn.execute(_LOCK_PLAN_ALONE, params)).first()
    return None if row is None else LockedPlan(*(*row, None))


_LOCK_PLAN_AS_ON_DRIVER = PreparedStatement(_LOCK_PLAN_AS)
_LOCK_PLAN_ALONE_ON_DRIVER = PreparedStatement(_LOCK_PLAN_ALONE)


async def lock_plan_as_on(
    unit: DriverTransaction, account_id: str, caller_id: str
) -> LockedPlan | None:
    """``lock_plan_as`` in a driver transaction (the seat writes on PostgreSQL): the same
    statements, the same answer."""
    params = {"account_id": account_id, "caller_id": caller_id}
    row = await unit.first(_LOCK_PLAN_AS_ON_DRIVER, params)
    if row is not None:
        return LockedPlan(*row)
    row = await unit.first(_LOCK_PLAN_ALONE_ON_DRIVER, params)
    return None if row is None else LockedPlan(*(*row, None))


def _plan_and_account(lock: bool) -> Select[Plan, Account]:
    stmt = select(Plan, Account).join(Account, Account.id == Plan.account_id)
    stmt = stmt.where(Plan.account_id == bindparam("account_id", type_=String))
    if not lock:
        return stmt
    # The plan locked first (the one lock order), and the account key-shared: the share lock
    # is the one the invoice's foreign key takes anyway, so it blocks no directory change,
    # yet it makes PostgreSQL read the account as it is once the plan's lock is granted (not
    # as it was when the statement started waiting), as a read after the lock would.
    return stmt.with_for_update(of=Plan).suffix_with(
        "FOR KEY SHARE OF account", dialect="postgresql"
    )


def _plan_account_and_role() -> Select[Plan, Account, Role]:
    caller = aliased(User, name="caller")
    stmt = (
        select(Plan, Account, caller.role)
        .join(Account, Account.id == Plan.account_id)
        .join(
            caller,
            (caller.account_id == Plan.account_id)
            & (caller.id == bindparam("caller_id", type_=String)),
        )
        .where(Plan.account_id == bindparam("account_id", type_=String))
    )
    # As ``_LOCK_PLAN_AS``: the caller's row locked after the plan, read as it is then.
    return stmt.with_for_update(of=Plan).suffix_with(
        f"FOR KEY SHARE OF account {CALLER_LOCK}", dialect="postgresql"
    )


# Built once, as the hot read's: the quote and purchase paths run them on every request.
_PLAN_AND_ACCOUNT = {lock: _plan_and_account(lock) for lock in (False, True)}
_PLAN_ACCOUNT_AND_ROLE = _plan_account_and_role()


async def plan_and_account(
    session: AsyncSession, account_id: str, *, lock: bool
) -> tuple[Plan, Account] | None:
    """The plan (locked when ``lock``) and its account, in one statement; None if either is
    missing."""
    result = await session.execute(_PLAN_AND_ACCOUNT[lock], {"account_id": account_id})
    row = result.first()
    return None if row is None else (row[0], row[1])


async def plan_account_and_role(
    session: AsyncSession, account_id: str, caller_id: str
) -> tuple[Plan, Account, Role | None] | None:
    """The plan, locked, its account and the caller's role as of the lock (R17), in one
    statement; None if the plan or the account is missing. The role is None when the caller
    is not a user of the account."""
    params = {"account_id": account_id, "caller_id": caller_id}
    row = (await session.execute(_PLAN_ACCOUNT_AND_ROLE, params)).first()
    if row is not None:
        return row[0], row[1], Role(row[2])
    found = await plan_and_account(session, account_id, lock=True)
    return None if found is None else (*found, None)


@dataclass(frozen=True, slots=True)
class SettlingPlan:
    """The fields of a locked plan that settling an invoice reads."""

    account_id: str
    status: PlanStatus
    seats: int
    pending_invoice_id: str | None
    # R15: a decrease scheduled for the period's end, which a paid purchase cancels.
    scheduled_seats: int | None = None
    scheduled_for: date | None = None


async def lock_plans_of(
    session: AsyncSession, invoice_ids: Sequence[str], *, skip_locked: bool
) -> dict[str, SettlingPlan]:
    """Lock the plans of these invoices, in account order (the one lock order, and no two
    batch lockers can deadlock); the plan of each invoice it locked, by invoice id.

    With ``skip_locked`` a plan that another transaction holds is passed over (its invoices
    are missing from the answer) instead of waited for.
    """
    if not invoice_ids:
        return {}
    stmt = (
        select(
            _INVOICE.c.id,
            _PLAN.c.account_id,
            _PLAN.c.status,
            _PLAN.c.seats,
            _PLAN.c.pending_invoice_id,
            _PLAN.c.scheduled_seats,
            _PLAN.c.scheduled_for,
        )
        .join(_PLAN, _PLAN.c.account_id == _INVOICE.c.account_id)
        .where(_INVOICE.c.id.in_(list(invoice_ids)))
        .order_by(_PLAN.c.account_id)
        # SQLite compiles FOR UPDATE away: there BEGIN IMMEDIATE has taken the one write lock.
        .with_for_update(of=_PLAN, skip_locked=skip_locked)
    )
    rows = (await session.execute(stmt)).all()
    return {row[0]: SettlingPlan(*row[1:]) for row in rows}


async def claim_plans(
    session: AsyncSession, where: Sequence[Any], after: str, limit: int
) -> list[Plan]:
    """The next plans matching ``where`` after ``after``, in account order, locked; plans
    another transaction holds are skipped (another billing run is doing them)."""
    return list(
        await session.scalars(
            select(Plan)
            .where(*where, Plan.account_id > after)
            .order_by(Plan.account_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


async def reload_plans(session: AsyncSession, account_ids: Sequence[str]) -> list[Plan]:
    """Plans this transaction holds, read again (after a rolled-back savepoint)."""
    return list(
        await session.scalars(
            select(Plan)
            .where(Plan.account_id.in_(list(account_ids)))
            .order_by(Plan.account_id)
            .execution_options(populate_existing=True)
        )
    )


# --- Writes ----------------------------------------------------------------------------------


def open_new(account_id: str, now: datetime) -> Plan:
    """A new account's plan row, to add to the session with its account."""
    return Plan(account_id=account_id, **open_plan().values, created_at=now, updated_at=now)


def apply(plan: Plan, change: Change, now: datetime) -> None:
    """Make ``change`` to a plan the session holds (locked): the unit of work writes it."""
    for column, value in change.values.items():
        setattr(plan, column, value)
    plan.updated_at = now


def write_statement(
    account_id: Any, change: Change, now: Any, *, when: ColumnElement[bool] | None = None
) -> Update:
    """The UPDATE that makes ``change`` to the plan of ``account_id`` (values or bound
    parameters), only ``when`` it holds if given: for a statement that writes more than the
    plan (a purchase's pending invoice)."""
    stmt = update(_PLAN).where(_PLAN.c.account_id == account_id)
    if when is not None:
        stmt = stmt.where(when)
    return stmt.values({**change.values, "updated_at": now})


async def write(session: AsyncSession, account_id: str, change: Change, now: datetime) -> None:
    """Make ``change`` to a locked plan, without the ORM (the collection engine's batches)."""
    await session.execute(write_statement(account_id, change, now))


# In the SQL text, not bound: a constant is no parameter (nor a pgbench variable).
_ONE = literal_column("1", BigInteger)


def count_assigned(
    account_id: Any, *, by: int, now: Any, when: ColumnElement[bool] | None = None
) -> Update:
    """The UPDATE that counts one agent on (``by=1``) or off (``by=-1``) the plan, only
    ``when`` it holds if given (the assignment was made or freed by the same statement)."""
    assigned = _PLAN.c.assigned + _ONE if by > 0 else _PLAN.c.assigned - _ONE
    stmt = update(_PLAN).where(_PLAN.c.account_id == account_id)
    if when is not None:
        stmt = stmt.where(when)
    return stmt.values(assigned=assigned, updated_at=now)


def assigned_column() -> ColumnElement[int]:
    """The plan's count of agents, for a statement's RETURNING."""
    return _PLAN.c.assigned
