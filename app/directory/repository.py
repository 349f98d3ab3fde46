"""SQL for accounts and users."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.directory.models import Account, Role, User


async def account_exists(session: AsyncSession, account_id: str) -> bool:
    return (await session.scalar(select(Account.id).where(Account.id == account_id))) is not None


async def has_accounts(session: AsyncSession) -> bool:
    """Whether the directory holds any account at all (an empty database)."""
    return (await session.scalar(select(Account.id).limit(1))) is not None


async def get_account(
    session: AsyncSession, account_id: str, *, for_update: bool = False
) -> Account | None:
    stmt = select(Account).where(Account.id == account_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def user_role(session: AsyncSession, account_id: str, user_id: str) -> Role | None:
    role = await session.scalar(
        select(User.role).where(User.account_id == account_id, User.id == user_id)
    )
    return Role(role) if role is not None else None


async def get_user(session: AsyncSession, account_id: str, user_id: str) -> User | None:
    return await session.get(User, (account_id, user_id))


async def demote_primary_admin(session: AsyncSession, account_id: str, keep: str) -> None:
    """Make the account's primary admin (other than ``keep``) an admin."""
    await session.execute(
        update(User)
        .where(
            User.account_id == account_id,
            User.role == Role.PRIMARY_ADMIN,
            User.id != keep,
        )
        .values(role=Role.ADMIN)
    )
