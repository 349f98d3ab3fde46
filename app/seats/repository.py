"""SQL for plans, agents and quotes."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.directory.models import User
from app.pagination import keyset
from app.seats.models import Assignment, Plan, Quote


async def lock_plan(session: AsyncSession, account_id: str) -> Plan | None:
    """The plan, locked until the transaction ends (SELECT ... FOR UPDATE).

    Every seat-changing operation takes this lock before it checks a rule: two requests
    can then never both see the same empty seat, nor both raise or lower the same total.
    """
    return await session.scalar(select(Plan).where(Plan.account_id == account_id).with_for_update())


async def get_plan(session: AsyncSession, account_id: str) -> Plan | None:
    return await session.get(Plan, account_id)


async def get_assignment(session: AsyncSession, account_id: str, user_id: str) -> Assignment | None:
    return await session.get(Assignment, (account_id, user_id))


async def delete_assignment(session: AsyncSession, account_id: str, user_id: str) -> bool:
    result = await session.execute(
        delete(Assignment).where(Assignment.account_id == account_id, Assignment.user_id == user_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def agent_check(
    session: AsyncSession, account_id: str, user_id: str
) -> tuple[bool, bool, str | None] | None:
    """(user exists, is an agent, plan status) in one query, or None for an unknown user."""
    row = (
        await session.execute(
            select(Assignment.user_id, Plan.status)
            .select_from(User)
            .outerjoin(
                Assignment,
                (Assignment.account_id == User.account_id) & (Assignment.user_id == User.id),
            )
            .outerjoin(Plan, Plan.account_id == User.account_id)
            .where(User.account_id == account_id, User.id == user_id)
        )
    ).first()
    if row is None:
        return None
    return True, row[0] is not None, row[1]


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
