"""SQL of the billing run's jobs that only write: batches of plans claimed with SKIP LOCKED."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.directory.models import Account
from app.seats.models import Plan


async def claim_plans(
    session: AsyncSession, where: Sequence[Any], after: str, limit: int
) -> list[Plan]:
    """The next plans matching ``where`` after ``after``, in account order, locked; plans
    another transaction holds are skipped (another run is doing them)."""
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


async def accounts(session: AsyncSession, account_ids: Sequence[str]) -> dict[str, Account]:
    """The accounts of a batch of plans, in one statement."""
    if not account_ids:
        return {}
    found = await session.scalars(select(Account).where(Account.id.in_(list(account_ids))))
    return {account.id: account for account in found}
