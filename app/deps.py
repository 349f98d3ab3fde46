"""Request dependencies, as ``Annotated`` aliases the routers declare."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.auth import ID_PATTERN, Caller, Principal, TokenVerifier, caller_of, check_account_scope
from app.clock import Clock
from app.collection.service import Collector
from app.config import Settings
from app.db import Database
from app.directory import repository as directory
from app.errors import ServiceTokenRequired
from app.idempotency import IdempotencyStore, IdempotentRequest, Once, make_request
from app.operations import key_required
from app.payments.gateway import Gateway
from app.read_positions import HEADER, asked_position

# Every dependency is ``async def``: FastAPI runs a plain ``def`` one in a worker thread, a
# thread hop per dependency per request that cost more than the hot read's own query.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_collector(request: Request) -> Collector:
    collector: Collector = request.app.state.collector
    return collector


async def get_idempotency(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.idempotency
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(get_idempotency)]
CollectorDep = Annotated[Collector, Depends(get_collector)]


async def get_session(db: DbDep) -> AsyncIterator[AsyncSession]:
    """The request's session, one transaction: committed when the handler returns, rolled
    back if it raises."""
    async with db.transaction() as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit is an error
# response and never a success the database did not keep.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_now(session: SessionDep, clock: ClockDep) -> datetime:
    return await clock.now(session)


NowDep = Annotated[datetime, Depends(get_now)]


async def get_principal(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_service(principal: PrincipalDep) -> Principal:
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


async def _lookup_caller(
    session: AsyncSession | AsyncConnection, account_id: str, principal: Principal
) -> Caller:
    check_account_scope(principal, account_id)
    if principal.is_service:
        exists = await directory.account_exists(session, account_id)
        return caller_of(principal, account_id, account_exists=exists, role=None)
    role = await directory.user_role(session, account_id, principal.subject)
    return caller_of(principal, account_id, account_exists=True, role=role)


async def get_caller(
    account_id: AccountIdPath, principal: PrincipalDep, session: SessionDep
) -> Caller:
    """The caller acting on the path's account, with its role from the directory.

    Read in the request's own session, so that a handler's reads and writes share one
    transaction with it.
    """
    return await _lookup_caller(session, account_id, principal)


async def get_caller_apart(account_id: AccountIdPath, principal: PrincipalDep, db: DbDep) -> Caller:
    """The caller, read on a connection of its own, outside the handler's transactions.

    For handlers that run their work in transactions of their own (idempotent POSTs,
    purchases): on SQLite two open write transactions of one request would wait on each other.
    The lookup is one statement, a single read (``Database.read``).
    """
    async with db.read() as session:
        return await _lookup_caller(session, account_id, principal)


async def get_replica_session(
    request: Request, account_id: AccountIdPath, db: DbDep
) -> AsyncIterator[AsyncSession]:
    """A session for the account's reads that tolerate lag (lists, the plan summary): on a
    standby when SEATS_DATABASE_READ_URL names one that has replayed every change the worker
    knows of for the account and the caller's own last write (app/read_positions.py), else on
    the primary. Statements stand alone (``Database.read``): for reads only."""
    at_least = (
        asked_position(request.headers.get(HEADER), request.headers.get("cookie"))
        if db.replicas
        else 0
    )
    async with db.replica_read(account_id, at_least=at_least) as session:
        yield session


ReplicaSessionDep = Annotated[AsyncSession, Depends(get_replica_session, scope="function")]


async def get_replica_caller(
    account_id: AccountIdPath, principal: PrincipalDep, session: ReplicaSessionDep
) -> Caller:
    """The caller, read in the request's ``ReplicaSessionDep``."""
    return await _lookup_caller(session, account_id, principal)


async def get_replica_now(session: ReplicaSessionDep, clock: ClockDep) -> datetime:
    return await clock.now(session)


CallerDep = Annotated[Caller, Depends(get_caller)]
ReplicaCallerDep = Annotated[Caller, Depends(get_replica_caller)]
ReplicaNowDep = Annotated[datetime, Depends(get_replica_now)]
CallerApartDep = Annotated[Caller, Depends(get_caller_apart)]


async def get_idempotent_request(
    request: Request,
    caller: CallerApartDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Makes a retry safe: the same key and body replay the first answer "
            "(1-255 visible ASCII characters, kept 24 hours).",
            # Documented, not enforced here: make_request answers 400 invalid_idempotency_key.
            json_schema_extra={"pattern": r"^[\x21-\x7e]{1,255}$"},
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


async def get_once(
    request: Request, req: IdempotentRequestDep, store: IdempotencyDep, clock: ClockDep
) -> Once:
    """The unit of work of a POST that changes state, with its ``Idempotency-Key`` (SPEC §5):
    routes run their work through it (``Once.run``, or ``Once.execute`` on the money paths)
    and never open a transaction or claim a key themselves."""
    required = key_required(request.scope.get("endpoint"))
    return Once(store, req, clock, required, f"{request.method} {request.url.path}")


OnceDep = Annotated[Once, Depends(get_once)]
