"""SQL for accounts and users."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.directory.models import Account, Role, User


async def account_exists(session: AsyncSession | AsyncConnection, account_id: str) -> bool:
    return (await session.scalar(select(Account.id).where(Account.id == account_id))) is not None


async def has_accounts(session: AsyncSession) -> bool:
    """Whether the directory holds any account at all (an empty database)."""
    return (await session.scalar(select(Account.id).limit(1))) is not None


async def get_account(
    session: AsyncSession, account_id: str, *, for_update: bool = False
) -> Account | None:
    """The account; with ``for_update``, locked until the transaction ends.

    The lock is ``FOR NO KEY UPDATE`` (plain ``FOR UPDATE`` on SQLite's serialized writes): it
    serializes directory changes of one account, yet does not block the key-share locks that
    the foreign keys of seat writes take on the account (an event, an invoice), so a
    directory change never waits on a seat write or the other way round. Lock order (SPEC §7):
    whoever also needs the plan locks it first (``app.seats.members``).
    """
    stmt = select(Account).where(Account.id == account_id)
    if for_update:
        stmt = stmt.with_for_update(key_share=True)
    return await session.scalar(stmt)


async def currencies_in_use(session: AsyncSession) -> list[str]:
    """Every currency an account uses."""
    return list(await session.scalars(select(Account.currency).distinct()))


async def user_role(
    session: AsyncSession | AsyncConnection, account_id: str, user_id: str
) -> Role | None:
    role = await session.scalar(
        select(User.role).where(User.account_id == account_id, User.id == user_id)
    )
    return Role(role) if role is not None else None


async def get_user(session: AsyncSession, account_id: str, user_id: str) -> User | None:
    return await session.get(User, (account_id, user_id))


async def delete_user(session: AsyncSession, user: User) -> None:
    """Delete the user's row (its seat, if any, must be freed first: a foreign key says so)."""
    await session.delete(user)
    await session.flush()


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
