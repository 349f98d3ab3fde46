"""SQL for plans, agents and quotes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, String, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.clock import TestClockRow
from app.db import Database, PreparedRead
from app.directory.models import Account, Role, User
from app.pagination import keyset
from app.seats.models import Assignment, Plan, Quote


async def lock_plan(session: AsyncSession, account_id: str) -> Plan | None:
    """The plan, locked until the transaction ends (SELECT ... FOR UPDATE).

    Every seat-changing operation takes this lock before it checks a rule: two requests
    can then never both see the same empty seat, nor both raise or lower the same total.

    Lock order (SPEC §7): this is the first lock a transaction takes on an account, before the
    account row or any other; see ``app.seats.members`` for the directory changes.
    """
    return await session.scalar(select(Plan).where(Plan.account_id == account_id).with_for_update())


async def get_plan(session: AsyncSession, account_id: str) -> Plan | None:
    return await session.get(Plan, account_id)


async def delete_assignment(session: AsyncSession, account_id: str, user_id: str) -> bool:
    result = await session.execute(
        delete(Assignment).where(Assignment.account_id == account_id, Assignment.user_id == user_id)
    )
    return bool(getattr(result, "rowcount", 0))


class AgentCheckRow(NamedTuple):
    caller_role: str | None
    user_exists: bool
    is_agent: bool
    plan_status: str | None
    trial_ends_at: datetime | None
    stored_now: datetime | None = None


def _agent_check_statement(*, stored_clock: bool) -> Select[*tuple[Any, ...]]:
    caller, target = aliased(User), aliased(User)
    account_id, user_id = bindparam("account_id", type_=String), bindparam("user_id", type_=String)
    statement: Select[*tuple[Any, ...]] = select(
        caller.role,
        target.id.is_not(None),
        Assignment.user_id.is_not(None),
        Plan.status,
        Plan.trial_ends_at,
    )
    if stored_clock:
        # The test clock's time rides along in the same row (SEATS_TEST_CLOCK): no second trip.
        statement = statement.add_columns(
            select(TestClockRow.now).where(TestClockRow.id == 1).scalar_subquery()
        )
    return (
        statement.select_from(Account)
        .outerjoin(
            caller, (caller.account_id == Account.id) & (caller.id == bindparam("caller_id"))
        )
        .outerjoin(target, (target.account_id == Account.id) & (target.id == user_id))
        .outerjoin(
            Assignment, (Assignment.account_id == Account.id) & (Assignment.user_id == user_id)
        )
        .outerjoin(Plan, Plan.account_id == Account.id)
        .where(Account.id == account_id)
    )


# Built and compiled once: constructing it on every request cost as much as running it.
_AGENT_CHECK = {
    stored: PreparedRead(_agent_check_statement(stored_clock=stored)) for stored in (False, True)
}


async def agent_check(
    db: Database, account_id: str, caller_id: str, user_id: str, *, stored_clock: bool
) -> AgentCheckRow | None:
    """The hot read in one statement (None if no such account): the caller's role, whether
    the user exists and holds a seat, the plan's status, and the stored test clock's time
    if asked. Primary-key lookups only, so its cost does not grow with the number of users or
    agents. Enums come back as their text (the driver's own values on PostgreSQL)."""
    params = {"account_id": account_id, "caller_id": caller_id, "user_id": user_id}
    row = await db.read_one(_AGENT_CHECK[stored_clock], params)
    return None if row is None else AgentCheckRow(*row)


async def user_and_assignment(
    session: AsyncSession, account_id: str, user_id: str
) -> tuple[bool, Assignment | None]:
    """(the user exists, its assignment or None), in one query."""
    row = (
        await session.execute(
            select(User.id, Assignment)
            .outerjoin(
                Assignment,
                (Assignment.account_id == User.account_id) & (Assignment.user_id == User.id),
            )
            .where(User.account_id == account_id, User.id == user_id)
        )
    ).first()
    return (False, None) if row is None else (True, row[1])


async def list_agents(
    session: AsyncSession, account_id: str, cursor: str | None, limit: int
) -> list[Assignment]:
    stmt = keyset(
        select(Assignment).where(Assignment.account_id == account_id),
        Assignment.assigned_at,
        Assignment.user_id,
        cursor,
        limit,
    )
    return list((await session.scalars(stmt)).all())


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


# Built once, as the hot read's: the quote and purchase paths run them on every request.
_PLAN_AND_ACCOUNT = {lock: _plan_and_account(lock) for lock in (False, True)}


async def plan_and_account(
    session: AsyncSession, account_id: str, *, lock: bool
) -> tuple[Plan, Account] | None:
    """The plan (locked when ``lock``) and its account, in one statement; None if either is
    missing."""
    result = await session.execute(_PLAN_AND_ACCOUNT[lock], {"account_id": account_id})
    row = result.first()
    return None if row is None else (row[0], row[1])


async def get_quote(session: AsyncSession, account_id: str, quote_id: str) -> Quote | None:
    quote = await session.get(Quote, quote_id)
    return quote if quote is not None and quote.account_id == account_id else None


async def trim_quotes(session: AsyncSession, account_id: str, keep: int) -> int:
    """Delete all but the ``keep`` newest quotes of the account; how many went."""
    newest = (
        select(Quote.id)
        .where(Quote.account_id == account_id)
        .order_by(Quote.created_at.desc(), Quote.id.desc())
        .limit(keep)
    )
    result = await session.execute(
        delete(Quote).where(Quote.account_id == account_id, Quote.id.not_in(newest))
    )
    return int(getattr(result, "rowcount", 0) or 0)


class UserRow(NamedTuple):
    user_id: str
    name: str
    email: str
    role: Role
    agent: bool
    created_at: datetime


async def list_users(
    session: AsyncSession, account_id: str, cursor: str | None, limit: int
) -> list[UserRow]:
    """A page of the account's users, newest first, each with whether it holds a seat."""
    stmt = keyset(
        select(
            User.id,
            User.name,
            User.email,
            User.role,
            Assignment.user_id.is_not(None),
            User.created_at,
        )
        .outerjoin(
            Assignment,
            (Assignment.account_id == User.account_id) & (Assignment.user_id == User.id),
        )
        .where(User.account_id == account_id),
        User.created_at,
        User.id,
        cursor,
        limit,
    )
    return [UserRow(*row) for row in (await session.execute(stmt)).all()]
