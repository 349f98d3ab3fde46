"""The demo account ``make run`` creates in an empty development database (SPEC §9).

A primary admin, an admin and a few users, so that a person can open the Manage Seats page
and try the whole flow at once: start a trial, assign agents, buy and remove seats.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from app.auth import mint_token
from app.billing.periods import BillingCycle
from app.clock import Clock
from app.config import Settings, get_settings
from app.db import Database
from app.directory import repository as directory_repository
from app.directory import service as directory
from app.directory.models import Role
from app.directory.schemas import AccountIn, UserIn
from app.seats import members

DEMO_ACCOUNT = "demo"
DEMO_PRIMARY_ADMIN = "ada"
DEMO_USERS = (
    (DEMO_PRIMARY_ADMIN, "Ada Lovelace", Role.PRIMARY_ADMIN),
    ("grace", "Grace Hopper", Role.ADMIN),
    ("alan", "Alan Turing", Role.USER),
    ("katherine", "Katherine Johnson", Role.USER),
    ("edsger", "Edsger Dijkstra", Role.USER),
)


# The development secret `make run` (scripts/dev-run) generates once and serves with, relative to
# the checkout, as the default SQLite database is.
DEV_SECRET_FILE = Path("var") / "dev-jwt-secret"


def demo_settings() -> Settings:
    """The settings of the server `make run` starts, for a `seats demo` run in any terminal.

    With SEATS_JWT_SECRET set, the environment's, as `seats serve` reads them (SEATS_DEV=1
    still required). Without it, `make run`'s: its secret file (made now if it is not there
    yet, as `make run` would) and development mode.
    """
    if os.environ.get("SEATS_JWT_SECRET"):
        return get_settings()
    if not DEV_SECRET_FILE.is_file() or not DEV_SECRET_FILE.read_text().strip():
        DEV_SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
        DEV_SECRET_FILE.touch(mode=0o600)
        DEV_SECRET_FILE.write_text(secrets.token_urlsafe(48) + "\n")
    return Settings(jwt_secret=DEV_SECRET_FILE.read_text().strip(), dev=True)


class NotDevMode(Exception):
    """The demo is refused outside development mode: it would put users in a real directory."""


async def seed_demo(db: Database, clock: Clock, settings: Settings) -> bool:
    """Create the demo account and its users if the database has no account; True if it did."""
    if not settings.dev:
        raise NotDevMode("the demo account is created only in development mode (SEATS_DEV=1)")
    async with db.transaction() as session:
        if await directory_repository.has_accounts(session):
            return False
        now = await clock.now(session)
        account = AccountIn.model_validate(
            {
                "name": "Demo Inc.",
                "billing_cycle": BillingCycle.MONTHLY,
                # Periods start on the 1st, so a purchase today shows a prorated charge.
                "billing_anchor": now.date().replace(day=1).isoformat(),
                "payment_method": "pm_card_visa",
            }
        )
        await members.upsert_account(session, DEMO_ACCOUNT, account, now, settings)
        for user_id, name, role in DEMO_USERS:
            user = UserIn(email=f"{user_id}@demo.test", name=name, role=role)
            await directory.upsert_user(session, DEMO_ACCOUNT, user_id, user, now)
    return True


async def demo_exists(db: Database) -> bool:
    """Whether the demo account is in the database (it may have been seeded earlier)."""
    async with db.transaction() as session:
        return await directory_repository.account_exists(session, DEMO_ACCOUNT)


def page_url(settings: Settings, base_url: str, ttl: timedelta) -> str:
    """The Manage Seats page for the demo's primary admin, with a token in the fragment."""
    token = mint_token(settings, subject=DEMO_PRIMARY_ADMIN, account_id=DEMO_ACCOUNT, ttl=ttl)
    return f"{base_url.rstrip('/')}/manage#token={token}"
