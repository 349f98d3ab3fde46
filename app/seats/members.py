"""Directory changes that touch seats: opening an account's plan, removing a user who may hold
a seat (SPEC §4 internal endpoints, R5, §7).

Seats sit above the directory: the directory knows nothing of plans, so the changes that
involve both are orchestrated here, and take their locks in the one order of the service
(SPEC §7):

1. the account's **plan** row (``SELECT ... FOR UPDATE``, ``app.plan.repository.lock_plan``),
2. then the **account** row (``FOR NO KEY UPDATE``, ``app.directory.repository.get_account``),
3. then the rows they change (users, assignments, events, invoices); a seat write also
   share-locks the caller's own user row here, after the plan, to read its role as of the
   lock (R17), so a role change waits for that write and never the other way round.

Every seat write already starts at 1 and then takes only key-share locks on the account (the
foreign keys of the rows it inserts), which ``FOR NO KEY UPDATE`` does not block. Removing a
user used to take 2 before 1, and deadlocked against assignments.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.directory import repository as directory
from app.directory import service as directory_service
from app.directory.models import Account, Role
from app.directory.schemas import AccountIn
from app.errors import NotFound, PrimaryAdminRequired, UserNotFound
from app.plan import repository as plans
from app.seats.agents import release_seat


async def upsert_account(
    session: AsyncSession, account_id: str, body: AccountIn, now: datetime, settings: Settings
) -> tuple[Account, bool]:
    """Create or update an account (``app.directory``); a new one gets its empty plan."""
    # Plan first (§7): a change of currency then waits for a purchase that holds the plan
    # and is writing its invoice, and sees that invoice (CurrencyLocked).
    await plans.lock_plan(session, account_id)
    account, created = await directory_service.upsert_account(
        session, account_id, body, now, settings
    )
    if created:  # no plan row yet either: it references the account
        session.add(plans.open_new(account_id, now))
        await directory_service.flush_or_conflict(session)
    return account, created


async def remove_user(
    session: AsyncSession, account_id: str, user_id: str, actor: str, now: datetime
) -> None:
    """Remove a user from the directory; a seat it held is freed, with an event (R5)."""
    # Plan first, then the account (§7): the order of every seat write.
    plan = await plans.lock_plan(session, account_id)
    if plan is None:
        raise NotFound("No such account.")
    # The account's lock serializes directory changes of one account: a concurrent "make this
    # user the primary admin" cannot slip in between the check below and the delete.
    if await directory.get_account(session, account_id, for_update=True) is None:
        raise NotFound("No such account.")
    user = await directory.get_user(session, account_id, user_id)
    if user is None:
        raise UserNotFound(f"No user {user_id!r} in this account.")
    if user.role is Role.PRIMARY_ADMIN:
        raise PrimaryAdminRequired("Name another primary admin before removing this one.")
    await release_seat(session, account_id, user_id, actor, now, plan.assigned, "user_removed")
    await directory.delete_user(session, user)
