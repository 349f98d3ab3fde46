"""Request dependencies, as ``Annotated`` aliases the routers declare."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import ID_PATTERN, Caller, Principal, TokenVerifier
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.directory import repository as directory
from app.errors import NotFound, ServiceTokenRequired, UnknownUser
from app.idempotency import IdempotencyStore, IdempotentRequest, make_request
from app.payments.gateway import Gateway


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def get_idempotency(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.idempotency
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(get_idempotency)]


async def get_session(db: DbDep) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the handler returns, rolled back if it raises."""
    async with db.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": commit before the response is sent, so a failed commit is an error
# response and never a success the database did not keep.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_now(session: SessionDep, clock: ClockDep) -> datetime:
    return await clock.now(session)


NowDep = Annotated[datetime, Depends(get_now)]


def get_principal(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_service(principal: PrincipalDep) -> Principal:
    if not principal.is_service:
        raise ServiceTokenRequired("This endpoint is for internal services.")
    return principal


ServiceDep = Annotated[Principal, Depends(require_service)]

AccountIdPath = Annotated[
    str, Path(pattern=ID_PATTERN, description="The platform's account id", examples=["acme"])
]
UserIdPath = Annotated[
    str, Path(pattern=ID_PATTERN, description="The platform's user id", examples=["alice"])
]


async def get_caller(account_id: AccountIdPath, principal: PrincipalDep, db: DbDep) -> Caller:
    """The caller acting on the path's account, with its role from the directory.

    Another account's path answers 404, as if it did not exist: no leak of which ids exist.
    """
    if principal.account_id is not None and principal.account_id != account_id:
        raise NotFound("No such account.")
    # A short transaction of its own: the request's work may run in other transactions
    # (idempotent POSTs), and on SQLite two open write transactions would wait on each other.
    async with db.transaction() as session:
        if principal.is_service:
            if not await directory.account_exists(session, account_id):
                raise NotFound("No such account.")
            return Caller(account_id, principal.subject, None)
        role = await directory.user_role(session, account_id, principal.subject)
    if role is None:
        raise UnknownUser("The token's user is not a user of this account in the directory.")
    return Caller(account_id, principal.subject, role)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_idempotent_request(
    request: Request,
    caller: CallerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Makes a retry safe: the same key and body replay the first answer "
            "(1-255 visible ASCII characters, kept 24 hours).",
        ),
    ] = None,
) -> IdempotentRequest | None:
    return make_request(
        account_id=caller.account_id,
        caller=caller.actor,
        key=idempotency_key,
        method=request.method,
        path=request.url.path,
        body=await request.body(),
    )


IdempotentRequestDep = Annotated[IdempotentRequest | None, Depends(get_idempotent_request)]
