"""The directory: accounts and users, upserted by the platform (SPEC §4, internal).

It knows nothing of seats: opening an account's plan and removing a user who may hold a seat
are orchestrated by ``app.seats.members``, which takes the plan's lock first (SPEC §7).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.directory import repository
from app.directory.models import Account, Role, User
from app.directory.schemas import AccountIn, UserIn
from app.errors import (
    Conflict,
    CurrencyLocked,
    NotFound,
    PrimaryAdminRequired,
    UnsupportedCurrency,
)
from app.ledger import repository as ledger


async def upsert_account(
    session: AsyncSession, account_id: str, body: AccountIn, now: datetime, settings: Settings
) -> tuple[Account, bool]:
    """Create or update an account; ``(account, created)``. Its plan is ``app.seats.members``'s.

    A new billing cycle or anchor applies from the next renewal: the current paid period is
    kept. The currency is fixed once the account has invoices, and must have a seat price (R13).
    """
    if body.currency is not None:
        check_currency(body.currency, settings)
    account = await repository.get_account(session, account_id, for_update=True)
    if account is None:
        currency = body.currency or settings.currency
        check_currency(currency, settings)
        account = Account(
            id=account_id,
            name=body.name,
            billing_cycle=body.billing_cycle,
            billing_anchor=body.billing_anchor,
            payment_method=body.payment_method,
            currency=currency,
            created_at=now,
            updated_at=now,
        )
        session.add(account)
        await flush_or_conflict(session)
        return account, True
    currency = body.currency or account.currency  # absent: keep the account's currency
    if currency != account.currency and await ledger.has_invoices(session, account_id):
        raise CurrencyLocked(f"The account has invoices in {account.currency}.")
    account.name = body.name
    account.billing_cycle = body.billing_cycle
    account.billing_anchor = body.billing_anchor
    account.payment_method = body.payment_method
    account.currency = currency
    account.updated_at = now
    return account, False


class PricesMissing(RuntimeError):
    """Accounts use a currency the settings no longer price (R18)."""


async def check_prices_cover_accounts(session: AsyncSession, settings: Settings) -> None:
    """R18: every currency an account uses has a seat price, else ``PricesMissing`` (the
    service refuses to start): its plans could neither be priced nor renewed."""
    missing = sorted(set(await repository.currencies_in_use(session)) - settings.prices.keys())
    if missing:
        raise PricesMissing(
            f"SEATS_PRICES names no price for {', '.join(missing)}, which accounts use: "
            "name it again (a new price applies from the next quote and invoice)"
        )


def check_currency(currency: str, settings: Settings) -> None:
    """R13: an account may use only a currency with a configured seat price."""
    if settings.price_for(currency) is None:
        raise UnsupportedCurrency(currency, sorted(settings.prices))


async def upsert_user(
    session: AsyncSession, account_id: str, user_id: str, body: UserIn, now: datetime
) -> tuple[User, bool]:
    """Create or update a user; naming a new primary admin makes the old one an admin."""
    # The account's row lock serializes directory changes of one account, so two
    # concurrent "make X primary" calls cannot leave zero or two primary admins.
    if await repository.get_account(session, account_id, for_update=True) is None:
        raise NotFound("No such account.")
    user = await repository.get_user(session, account_id, user_id)
    if user is not None and user.role is Role.PRIMARY_ADMIN and body.role is not Role.PRIMARY_ADMIN:
        raise PrimaryAdminRequired(
            "This user is the primary admin: name another primary admin instead."
        )
    if body.role is Role.PRIMARY_ADMIN:
        await repository.demote_primary_admin(session, account_id, keep=user_id)
    created = user is None
    if user is None:
        user = User(account_id=account_id, id=user_id, created_at=now)
        session.add(user)
    user.email = body.email
    user.name = body.name
    user.role = body.role
    user.updated_at = now
    await flush_or_conflict(session)
    return user, created


async def flush_or_conflict(session: AsyncSession) -> None:
    """Flush; a unique key a concurrent request took first is ``409 conflict``."""
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent change won the race: the caller may retry
        raise Conflict("A concurrent change conflicted with this one; retry.") from exc
