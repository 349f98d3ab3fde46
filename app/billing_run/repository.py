"""SQL of the billing run's jobs; their plans are claimed by ``app.plan.repository``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.directory.models import Account


async def accounts(session: AsyncSession, account_ids: Sequence[str]) -> dict[str, Account]:
    """The accounts of a batch of plans, in one statement."""
    if not account_ids:
        return {}
    found = await session.scalars(select(Account).where(Account.id.in_(list(account_ids))))
    return {account.id: account for account in found}
