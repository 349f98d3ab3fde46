"""SQL for agents, quotes, the account's users and the hot agent check.

The plan row itself is loaded, locked and written by ``app.plan.repository``: the seat writes
here count their agent on it through that module's statement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    JSON,
    Connection,
    Select,
    String,
    Table,
    TextClause,
    bindparam,
    delete,
    exists,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from app.clock import TestClockRow
from app.db import Database, DriverTransaction, PreparedRead, PreparedStatement
from app.directory.models import Account, Role, User
from app.ledger.models import Event
from app.pagination import keyset
from app.plan import repository as plans
from app.seats.models import Assignment, Plan, Quote
from app.sqltypes import UTCDateTime
from app.webhooks import outbox

# Core tables, not ORM entities: the seat writes below run on the session's connection, with
# no unit of work (and so no flush) in between.
_USER = cast(Table, User.__table__)
_ASSIGNMENT = cast(Table, Assignment.__table__)
_EVENT = cast(Table, Event.__table__)


class SeatEvent(NamedTuple):
    """The audit event of a seat write, written by the same statement (``outbox.EventRecord``)."""

    id: str
    account_id: str
    type: str
    actor: str
    at: datetime
    data: dict[str, Any]


class Seat(NamedTuple):
    """What ``assign_seat`` found and did."""

    user_exists: bool
    # The user's assignment before this statement, if it had one (then nothing changed).
    assigned_at: datetime | None
    assigned_by: str | None
    taken: bool  # this statement assigned the seat


def _target() -> Select[Any]:
    """The user and its assignment, if any."""
    user, assignment = _USER.c, _ASSIGNMENT.c
    return (
        select(user.id.label("user_id"), assignment.assigned_at, assignment.assigned_by)
        .select_from(
            _USER.outerjoin(
                _ASSIGNMENT,
                (assignment.account_id == user.account_id) & (assignment.user_id == user.id),
            )
        )
        .where(
            user.account_id == bindparam("seat_account_id", type_=String),
            user.id == bindparam("seat_user_id", type_=String),
        )
    )


_TARGET = _target()
# Parameters are never named like a column: an UPDATE run with one would also SET it.
_NOW = bindparam("seat_now", type_=UTCDateTime())
_ACCOUNT_ID = bindparam("seat_account_id", type_=String)
_ACTOR = bindparam("seat_actor", type_=String)
_EVENT_COLUMNS = ["id", "account_id", "type", "actor", "at", "data"]


def _event_of(source: Any) -> Any:
    """The event row, written once per row of ``source`` (one, or none: nothing happened)."""
    values = select(
        bindparam("event_id", type_=String),
        _ACCOUNT_ID,
        bindparam("event_type", type_=String),
        _ACTOR,
        _NOW,
        bindparam("event_data", type_=JSON()),
    ).select_from(source)
    return (
        insert(_EVENT)
        .from_select(_EVENT_COLUMNS, values)
        .returning(_EVENT.c.id, _EVENT.c.type, _EVENT.c.at)
        .cte("written_event")
    )


def _assign_pg() -> Select[Any]:
    """The whole assignment in one PostgreSQL statement, in a snapshot taken after the lock:
    read the user and its assignment; if it exists and holds no seat, insert the assignment,
    count it on the plan, write the event and queue its webhook deliveries. Answers the
    target's row (none: no such user) and whether it took the seat."""
    target = _TARGET.cte("target")
    taken = (
        insert(_ASSIGNMENT)
        .from_select(
            ["account_id", "user_id", "assigned_at", "assigned_by"],
            select(_ACCOUNT_ID, target.c.user_id, _NOW, _ACTOR).where(
                target.c.assigned_at.is_(None)
            ),
        )
        .returning(_ASSIGNMENT.c.user_id)
        .cte("taken")
    )
    counted = (
        plans.count_assigned(_ACCOUNT_ID, by=1, now=_NOW, when=exists(select(taken.c.user_id)))
        .returning(plans.assigned_column())
        .cte("counted")
    )
    written = _event_of(taken)
    queued = outbox.queue_statement(written).cte("queued")
    return select(
        target.c.user_id,
        target.c.assigned_at,
        target.c.assigned_by,
        exists(select(taken.c.user_id)).label("taken"),
    ).add_cte(counted, written, queued)


def _release_pg() -> Select[Any]:
    """The whole unassignment in one PostgreSQL statement: delete the assignment; if there
    was one, count it off the plan, write the event and queue its deliveries."""
    released = (
        delete(_ASSIGNMENT)
        .where(
            _ASSIGNMENT.c.account_id == _ACCOUNT_ID,
            _ASSIGNMENT.c.user_id == bindparam("seat_user_id", type_=String),
        )
        .returning(_ASSIGNMENT.c.user_id)
        .cte("released")
    )
    counted = (
        plans.count_assigned(_ACCOUNT_ID, by=-1, now=_NOW, when=exists(select(released.c.user_id)))
        .returning(plans.assigned_column())
        .cte("counted")
    )
    written = _event_of(released)
    queued = outbox.queue_statement(written).cte("queued")
    return select(exists(select(released.c.user_id)).label("released")).add_cte(
        counted, written, queued
    )


# Built once: the assign/unassign hot path, in a session or compiled once for the driver.
_ASSIGN_PG = _assign_pg()
_RELEASE_PG = _release_pg()
_ASSIGN_ON_DRIVER = PreparedStatement(_ASSIGN_PG)
_RELEASE_ON_DRIVER = PreparedStatement(_RELEASE_PG)


def _parameters(account_id: str, user_id: str, now: datetime, event: SeatEvent) -> dict[str, Any]:
    """A seat write's parameters, its event's included (the actor is the event's)."""
    return {
        "seat_account_id": account_id,
        "seat_user_id": user_id,
        "seat_now": now,
        "seat_actor": event.actor,
        "event_id": event.id,
        "event_type": event.type,
        "event_data": event.data,
        **outbox.queue_parameters(event),
    }


async def _write_event(conn: AsyncConnection, event: SeatEvent) -> None:
    """The event and its deliveries as separate statements (SQLite)."""
    await conn.execute(insert(_EVENT).values(event._asdict()))
    await conn.run_sync(_queue, event)


def _queue(conn: Connection, event: SeatEvent) -> None:
    outbox.queue(conn, [event])


async def assign_seat(
    session: AsyncSession,
    account_id: str,
    user_id: str,
    *,
    now: datetime,
    actor: str,
    allowed: bool,
    event: SeatEvent,
) -> Seat:
    """R5's write, under the plan's lock: give ``user_id`` a seat, with ``event``, if the user
    exists, holds none yet and ``allowed``; otherwise change nothing. Says what it found.

    The user and its assignment are read after the lock was granted (SPEC §7), never in the
    lock's own snapshot: a concurrent assignment or removal of the user is seen.
    """
    conn = await session.connection()
    params = _parameters(account_id, user_id, now, event)
    if allowed and conn.dialect.name == "postgresql":
        return _seat((await conn.execute(_ASSIGN_PG, params)).first())
    # Refused (only the user is read), or SQLite: the same writes, one statement each (its
    # transaction holds the database's write lock).
    found = (await conn.execute(_TARGET, params)).first()
    if found is None:
        return Seat(False, None, None, False)
    if found.assigned_at is not None or not allowed:
        return Seat(True, found.assigned_at, found.assigned_by, False)
    await conn.execute(
        insert(_ASSIGNMENT).values(
            account_id=account_id, user_id=user_id, assigned_at=now, assigned_by=actor
        )
    )
    await conn.execute(plans.count_assigned(account_id, by=1, now=now))
    await _write_event(conn, event)
    return Seat(True, None, None, True)


def _seat(row: Any) -> Seat:
    """What ``_ASSIGN_PG`` answered: the target's row (none: no such user)."""
    if row is None:
        return Seat(False, None, None, False)
    _, assigned_at, assigned_by, taken = row
    return Seat(True, assigned_at, assigned_by, bool(taken))


async def assign_seat_on(
    unit: DriverTransaction, account_id: str, user_id: str, *, now: datetime, event: SeatEvent
) -> Seat:
    """``assign_seat`` allowed, in a driver transaction (PostgreSQL): the same statement."""
    return _seat(await unit.first(_ASSIGN_ON_DRIVER, _parameters(account_id, user_id, now, event)))


async def release_seat_on(
    unit: DriverTransaction, account_id: str, user_id: str, *, now: datetime, event: SeatEvent
) -> bool:
    """``release_seat`` in a driver transaction (PostgreSQL): the same statement."""
    row = await unit.first(_RELEASE_ON_DRIVER, _parameters(account_id, user_id, now, event))
    return row is not None and bool(row[0])


async def release_seat(
    session: AsyncSession, account_id: str, user_id: str, *, now: datetime, event: SeatEvent
) -> bool:
    """R5's other write, under the plan's lock: free ``user_id``'s seat, with ``event``;
    False (and nothing changed) if it held none."""
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        params = _parameters(account_id, user_id, now, event)
        return bool((await conn.execute(_RELEASE_PG, params)).scalar())
    result = await conn.execute(
        delete(_ASSIGNMENT).where(
            _ASSIGNMENT.c.account_id == account_id, _ASSIGNMENT.c.user_id == user_id
        )
    )
    if not result.rowcount:
        return False
    await conn.execute(plans.count_assigned(account_id, by=-1, now=now))
    await _write_event(conn, event)
    return True


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


def _agent_check_function(*, stored_clock: bool) -> TextClause:
    """The same row from ``seats_agent_check`` (migration 0008), the statement's query kept
    planned on the server: what runs behind a transaction pooler."""
    if stored_clock:
        return text(
            "SELECT caller_role, user_exists, is_agent, plan_status, trial_ends_at, stored_now "
            "FROM seats_agent_check(:account_id, :caller_id, :user_id, true)"
        )
    return text(
        "SELECT caller_role, user_exists, is_agent, plan_status, trial_ends_at "
        "FROM seats_agent_check(:account_id, :caller_id, :user_id, false)"
    )


# Built and compiled once: constructing it on every request cost as much as running it.
_AGENT_CHECK = {
    stored: PreparedRead(
        _agent_check_statement(stored_clock=stored),
        pooled=_agent_check_function(stored_clock=stored),
    )
    for stored in (False, True)
}


async def agent_check(
    db: Database, account_id: str, caller_id: str, user_id: str, *, stored_clock: bool
) -> AgentCheckRow | None:
    """The hot read in one statement (None if no such account): the caller's role, whether
    the user exists and holds a seat, the plan's status, and the stored test clock's time
    if asked. Primary-key lookups only, so its cost does not grow with the number of users or
    agents. Enums come back as their text (the driver's own values on PostgreSQL)."""
    params = {"account_id": account_id, "caller_id": caller_id, "user_id": user_id}
    # A standby may answer (SEATS_DATABASE_READ_URL) once it has replayed what the account
    # needs; the cache stores the answer either way.
    row = await db.read_one(_AGENT_CHECK[stored_clock], params, account_id=account_id)
    return None if row is None else AgentCheckRow(*row)


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


class Person(NamedTuple):
    user_id: str
    name: str
    role: Role
    agent: bool


async def caller_and_primary_admin(
    session: AsyncSession, account_id: str, user_id: str
) -> tuple[Person | None, Person | None]:
    """The user ``user_id`` and the account's primary admin (each with whether it holds a
    seat), in one statement: what the plan summary tells a user about who may do what."""
    rows = (
        await session.execute(
            select(User.id, User.name, User.role, Assignment.user_id.is_not(None))
            .outerjoin(
                Assignment,
                (Assignment.account_id == User.account_id) & (Assignment.user_id == User.id),
            )
            .where(
                User.account_id == account_id,
                (User.id == user_id) | (User.role == Role.PRIMARY_ADMIN),
            )
        )
    ).all()
    people = [Person(uid, name, Role(role), bool(agent)) for uid, name, role, agent in rows]
    caller = next((p for p in people if p.user_id == user_id), None)
    primary = next((p for p in people if p.role is Role.PRIMARY_ADMIN), None)
    return caller, primary
