"""Idempotency keys for the POSTs that change state (SPEC §5).

A key is scoped to (account, caller, key). The first request claims it in a committed row
marked running; a concurrent duplicate then sees the row and gets ``409
idempotency_key_in_use`` instead of running twice. The response is stored in the same
transaction as the change it reports, so a replay can never describe a change that did not
happen. Outcomes that a retry may change (``payment_pending``, ``purchase_in_progress``,
server errors) are not stored: the claim is released so that the retry runs again.

Locks and retention use wall-clock time, not the (possibly frozen) test clock: they are about
processes and storage, not about billing.

A claim is settled by the process that made it, even when the database was away at the time:
a request cut off by a failover (the primary gone mid-request) cannot release its key, so the
worker keeps the release and retries it until it lands on the new primary (a fraction of a
second after the promotion), instead of leaving the key "in use" until its lock expires
(``lock_seconds``). A retry is then told ``409 idempotency_key_in_use`` only while the first
request has not been settled, which SPEC §5 keeps for a request still running; and it runs
again safely: the money paths derive their answer from committed state, and a charge already
sent is sent again only under its own gateway key (app/collection). A release is conditional
on the claim's own lock time, so it never frees a key that a retry took over meanwhile. Only
when the process itself died does a key wait for its lock to expire.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import JSON, ColumnElement, Integer, String, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import Clock
from app.db import Base, Database
from app.errors import (
    PROBLEM_JSON,
    AppError,
    IdempotencyKeyInUse,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from app.problems import error_response
from app.sqltypes import UTCDateTime
from app.upsert import insert_new

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the IETF draft's examples

# Outcomes a retry with the same key may change: never replayed.
RETRYABLE_CODES = frozenset({"purchase_in_progress", "idempotency_key_in_use", "renewal_due"})

RUNNING, DONE = "running", "done"


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_key"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    caller: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8))
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSON, nullable=True)


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    account_id: str
    caller: str
    key: str
    fingerprint: str

    @property
    def scope_hash(self) -> str:
        """A stable name for this (account, caller, key), e.g. to find a purchase's invoice."""
        raw = f"{self.account_id}\x00{self.caller}\x00{self.key}".encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: Any
    replayed: bool = False

    def to_response(self) -> JSONResponse:
        media_type = PROBLEM_JSON if self.status >= 400 else "application/json"
        headers = {"Idempotent-Replayed": "true"} if self.replayed else None
        return JSONResponse(
            self.body, status_code=self.status, media_type=media_type, headers=headers
        )


def _is_key(req: IdempotentRequest) -> tuple[ColumnElement[bool], ...]:
    return (
        IdempotencyRecord.account_id == req.account_id,
        IdempotencyRecord.caller == req.caller,
        IdempotencyRecord.key == req.key,
    )


def _key_params(req: IdempotentRequest) -> dict[str, str]:
    return {"account_id": req.account_id, "caller": req.caller, "key": req.key}


# Built once: a claimed key is read on every replay and every concurrent duplicate.
_READ = select(
    IdempotencyRecord.fingerprint,
    IdempotencyRecord.state,
    IdempotencyRecord.locked_at,
    IdempotencyRecord.response_status,
    IdempotencyRecord.response_body,
).where(
    IdempotencyRecord.account_id == bindparam("account_id"),
    IdempotencyRecord.caller == bindparam("caller"),
    IdempotencyRecord.key == bindparam("key"),
)


class _Released(Exception):
    """The key found claimed was released before it could be read."""


def make_request(
    *,
    account_id: str,
    caller: str,
    key: str | None,
    method: str,
    path: str,
    body: bytes,
) -> IdempotentRequest | None:
    """The idempotent request for a header value, or None when no key was sent (whether the
    operation requires one is ``Once``'s to say, after the handler's role check)."""
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidIdempotencyKey("Idempotency-Key must be 1-255 visible ASCII characters")
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        canonical = body.decode("latin-1")
    digest = hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()
    return IdempotentRequest(account_id, caller, key, digest)


def _wall_now() -> datetime:
    return datetime.now(UTC)


# How often a worker retries the releases it could not make (the database away).
RELEASE_RETRY_SECONDS = 0.5


class IdempotencyStore:
    def __init__(
        self,
        db: Database,
        *,
        lock_seconds: float,
        retention_hours: int,
        release_retry_seconds: float = RELEASE_RETRY_SECONDS,
    ) -> None:
        self.db = db
        self.lock = timedelta(seconds=lock_seconds)
        self.retention = timedelta(hours=retention_hours)
        self.release_retry_seconds = release_retry_seconds
        # Claims of this process that it could not release: scope -> (request, lock time).
        self._unreleased: dict[tuple[str, str, str], tuple[IdempotentRequest, datetime]] = {}
        self._releaser: asyncio.Task[None] | None = None

    async def claim(self, req: IdempotentRequest) -> StoredResponse | None:
        """Claim the key, or return the stored response to replay. Committed at once."""
        stored, _ = await self._take(req)
        return stored

    async def _take(self, req: IdempotentRequest) -> tuple[StoredResponse | None, datetime]:
        """``claim``, and the lock time of the claim made (which its release names)."""
        async with self.db.transaction() as conn:
            for _ in range(2):
                now = _wall_now()
                try:
                    return await self._claim(conn, req, now), now
                except _Released:
                    continue
        raise IdempotencyKeyInUse()

    async def _claim(
        self, conn: AsyncSession, req: IdempotentRequest, now: datetime
    ) -> StoredResponse | None:
        # One statement claims a new key; a key already claimed comes back as nothing, and
        # only then is it read. Without a lock: the row's fields decide, and the takeover
        # below is itself conditional.
        values = {
            "account_id": req.account_id,
            "caller": req.caller,
            "key": req.key,
            "fingerprint": req.fingerprint,
            "state": RUNNING,
            "locked_at": now,
            "created_at": now,
        }
        claim = insert_new(IdempotencyRecord, self.db.dialect_name, values)
        if await conn.scalar(claim.returning(IdempotencyRecord.key)) is not None:
            return None
        row = (await conn.execute(_READ, _key_params(req))).first()
        if row is None:
            raise _Released  # released between the two statements: claim it again
        fingerprint, state, locked_at, status, body = row
        if fingerprint != req.fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request body or path."
            )
        if state == DONE:
            assert status is not None
            return StoredResponse(status, body, replayed=True)
        if now - locked_at < self.lock:
            raise IdempotencyKeyInUse("The first request with this key is still running.")
        # The first request's process died while holding the key: take it over, unless
        # another retry just did (its new lock time then fails the condition).
        taken = await conn.scalar(
            update(IdempotencyRecord)
            .where(
                *_is_key(req),
                IdempotencyRecord.state == RUNNING,
                IdempotencyRecord.locked_at <= now - self.lock,
            )
            .values(locked_at=now)
            .returning(IdempotencyRecord.key)
        )
        if taken is None:
            raise IdempotencyKeyInUse("The first request with this key is still running.")
        return None

    async def store(
        self,
        session: AsyncSession | AsyncConnection,
        req: IdempotentRequest,
        status: int,
        body: Any,
    ) -> None:
        """Record the response, in the caller's transaction (the one that made the change).

        One UPDATE: a key cleaned up meanwhile (a request running for over a day) is left so."""
        await session.execute(
            update(IdempotencyRecord)
            .where(*_is_key(req))
            .values(state=DONE, response_status=status, response_body=body)
            .execution_options(synchronize_session=False)
        )

    async def release(self, req: IdempotentRequest, locked_at: datetime | None = None) -> None:
        """Forget a claim whose outcome a retry may change: the one locked at ``locked_at``
        when given (not a retry's takeover of it), else whichever is running."""
        mine = () if locked_at is None else (IdempotencyRecord.locked_at == locked_at,)
        async with self.db.transaction() as conn:
            await conn.execute(
                delete(IdempotencyRecord).where(
                    *_is_key(req), IdempotencyRecord.state == RUNNING, *mine
                )
            )

    async def finish_with_error(
        self, req: IdempotentRequest, exc: AppError, locked_at: datetime | None = None
    ) -> None:
        """Store a final error (e.g. 409 seats_assigned) or release a retryable one."""
        if exc.status >= 500 or exc.code in RETRYABLE_CODES:
            await self.release_quietly(req, locked_at)
            return
        body = json.loads(bytes(error_response(exc).body))
        try:
            async with self.db.transaction() as conn:
                await self.store(conn, req, exc.status, body)
        except Exception:
            # Unstored, the retry runs again and reaches the same final error.
            await self.release_quietly(req, locked_at)
            raise

    async def purge_expired(self, session: AsyncSession) -> int:
        """Delete keys past retention (at least 24 hours, SPEC §5)."""
        cutoff = _wall_now() - self.retention
        result = await session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def run(
        self,
        req: IdempotentRequest | None,
        status: int,
        clock: Clock,
        work: Callable[[AsyncSession, datetime], Awaitable[BaseModel]],
    ) -> JSONResponse:
        """Run ``work`` in one transaction, at most once per key, and answer with its result.

        The response is stored in the same transaction as the change it reports."""

        async def once() -> StoredResponse:
            async with self.db.transaction() as session:
                body = jsonable_encoder(await work(session, await clock.now(session)))
                if req is not None:
                    await self.store(session, req, status, body)
            return StoredResponse(status, body)

        reply = await (self._guarded(req, once) if req is not None else once())
        return reply.to_response()

    async def execute(
        self, req: IdempotentRequest, work: Callable[[], Awaitable[StoredResponse]]
    ) -> StoredResponse:
        """Run ``work`` (which opens its own transactions) at most once per key.

        For the multi-step money paths (a purchase, ``/pay``): ``work`` derives its answer
        from committed state (the invoice), so storing it afterwards in its own transaction
        cannot describe a change that did not happen, and a retry after a crash in between
        derives the same answer again. Final errors are stored; retryable ones released.
        """

        async def then_store() -> StoredResponse:
            reply = await work()
            async with self.db.transaction() as conn:
                await self.store(conn, req, reply.status, reply.body)
            return reply

        return await self._guarded(req, then_store)

    async def _guarded(
        self, req: IdempotentRequest, work: Callable[[], Awaitable[StoredResponse]]
    ) -> StoredResponse:
        """Claim the key (or replay it), run ``work``, and settle the claim by its outcome."""
        stored, locked_at = await self._take(req)
        if stored is not None:
            return stored
        try:
            return await work()
        except AppError as exc:
            await self.finish_with_error(req, exc, locked_at)
            raise
        except BaseException:
            await self.release_quietly(req, locked_at)
            raise

    async def release_quietly(
        self, req: IdempotentRequest, locked_at: datetime | None = None
    ) -> None:
        """``release``, or when the database is away (often why the request failed), keep
        the release and retry it in the background until it lands (``_release_later``). The
        original error is what the caller reports."""
        try:
            await self.release(req, locked_at)
        except Exception as exc:
            if locked_at is None:
                log.warning("could not release idempotency key", exc_info=True)
                return
            log.warning(
                "could not release idempotency key (%s); retrying every %s s",
                type(exc).__name__,
                self.release_retry_seconds,
            )
            self._unreleased[(req.account_id, req.caller, req.key)] = (req, locked_at)
            if self._releaser is None or self._releaser.done():
                self._releaser = asyncio.get_running_loop().create_task(self._release_later())

    async def _release_later(self) -> None:
        """Retry the releases this process could not make, until each lands or its lock has
        expired (a retry may then take the key over by itself)."""
        while self._unreleased:
            await asyncio.sleep(self.release_retry_seconds)
            for scope, (req, locked_at) in list(self._unreleased.items()):
                if _wall_now() - locked_at >= self.lock:
                    del self._unreleased[scope]
                    continue
                try:
                    await self.release(req, locked_at)
                except Exception:
                    break  # the database is still away: all of them wait for the next round
                if self._unreleased.get(scope) == (req, locked_at):
                    del self._unreleased[scope]
                log.info("released idempotency key after the database came back")


@dataclass(frozen=True, slots=True)
class Once:
    """A state-changing request's unit of work, run at most once per ``Idempotency-Key``
    (``request``; None when none was sent): what a route gets from ``app.deps.OnceDep``.

    Two shapes, and only these: ``run`` does the work in one transaction that also stores
    the answer; ``execute`` is the money paths' two-phase unit (claim, commit, call the
    gateway, record: ``work`` opens its own transactions) whose answer is stored after it.
    """

    store: IdempotencyStore
    request: IdempotentRequest | None
    clock: Clock
    # The route declares the key required (app/operations.py). Checked when the work is run,
    # after the handler's role check: a caller who may not do this learns that first (403),
    # whatever headers it sent.
    key_required: bool = False
    where: str = ""

    def require_key(self) -> IdempotentRequest:
        """The request's key, or ``400 idempotency_key_required`` where the route requires one
        and none was sent."""
        if self.request is None:
            raise IdempotencyKeyRequired(f"{self.where} needs an Idempotency-Key header.")
        return self.request

    async def run(
        self, status: int, work: Callable[[AsyncSession, datetime], Awaitable[BaseModel]]
    ) -> JSONResponse:
        """``work(session, now)`` in one transaction, answered with ``status``."""
        if self.key_required:
            self.require_key()
        return await self.store.run(self.request, status, self.clock, work)

    async def execute(self, work: Callable[[], Awaitable[StoredResponse]]) -> StoredResponse:
        """``work`` (its own transactions), at most once per key; without a key, just once."""
        if self.key_required:
            self.require_key()
        if self.request is None:
            return await work()
        return await self.store.execute(self.request, work)
