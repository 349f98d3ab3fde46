"""Internal endpoints through which the platform keeps the directory (SPEC §4)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.deps import AccountIdPath, NowDep, ServiceDep, SessionDep, SettingsDep, UserIdPath
from app.directory import service
from app.directory.schemas import AccountIn, AccountOut, UserIn, UserOut
from app.errors import (
    Conflict,
    CurrencyLocked,
    PrimaryAdminRequired,
    UnsupportedCurrency,
    UserNotFound,
)
from app.operations import INTERNAL, declare
from app.retry import RetryOnConflictRoute
from app.seats import members

router = APIRouter(
    prefix="/internal/v1/accounts", tags=["internal: directory"], route_class=RetryOnConflictRoute
)


@router.put(
    "/{account_id}",
    response_model=AccountOut,
    status_code=200,
    responses={201: {"description": "Created", "model": AccountOut}},
)
# Conflict: a concurrent upsert of the same row won; retrying succeeds.
@declare(*INTERNAL, CurrencyLocked, UnsupportedCurrency, Conflict)
async def upsert_account(
    account_id: AccountIdPath,
    body: AccountIn,
    _: ServiceDep,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
    response: Response,
) -> AccountOut:
    """Create (201) or update (200) an account."""
    account, created = await members.upsert_account(session, account_id, body, now, settings)
    response.status_code = 201 if created else 200
    return AccountOut.model_validate(account)


@router.put(
    "/{account_id}/users/{user_id}",
    response_model=UserOut,
    status_code=200,
    responses={201: {"description": "Created", "model": UserOut}},
)
@declare(*INTERNAL, PrimaryAdminRequired, Conflict)
async def upsert_user(
    account_id: AccountIdPath,
    user_id: UserIdPath,
    body: UserIn,
    _: ServiceDep,
    session: SessionDep,
    now: NowDep,
    response: Response,
) -> UserOut:
    """Create (201) or update (200) a user; one primary admin per account."""
    user, created = await service.upsert_user(session, account_id, user_id, body, now)
    response.status_code = 201 if created else 200
    return UserOut.model_validate(user)


@router.delete("/{account_id}/users/{user_id}", status_code=204)
@declare(*INTERNAL, UserNotFound, PrimaryAdminRequired, Conflict)
async def delete_user(
    account_id: AccountIdPath,
    user_id: UserIdPath,
    principal: ServiceDep,
    session: SessionDep,
    now: NowDep,
) -> Response:
    """Remove a user; a seat it held is freed."""
    await members.remove_user(session, account_id, user_id, f"service:{principal.subject}", now)
    return Response(status_code=204)
