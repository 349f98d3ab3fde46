"""Idempotency keys for the POSTs that change state (SPEC §5).

A key is scoped to (account, caller, key). The first request claims it in a committed row
marked running; a concurrent duplicate then sees the row and gets ``409
idempotency_key_in_use`` instead of running twice. The response is stored in the same
transaction as the change it reports, so a replay can never describe a change that did not
happen. Outcomes that a retry may change (``payment_pending``, ``purchase_in_progress``,
server errors) are not stored: the claim is released so that the retry runs again.

Locks and retention use wall-clock time, not the (possibly frozen) test clock: they are about
processes and storage, not about billing.
"""

from __future__ import annotations

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
from sqlalchemy import JSON, Integer, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import Clock
from app.db import Base, Database
from app.errors import (
    PROBLEM_JSON,
    AppError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from app.problems import error_response
from app.sqltypes import UTCDateTime

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


def make_request(
    *, account_id: str, caller: str, key: str | None, method: str, path: str, body: bytes
) -> IdempotentRequest | None:
    """The idempotent request for a header value, or None when no key was sent."""
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


class IdempotencyStore:
    def __init__(self, db: Database, *, lock_seconds: float, retention_hours: int) -> None:
        self.db = db
        self.lock = timedelta(seconds=lock_seconds)
        self.retention = timedelta(hours=retention_hours)

    async def claim(self, req: IdempotentRequest) -> StoredResponse | None:
        """Claim the key, or return the stored response to replay. Commits at once."""
        for _ in range(2):
            try:
                async with self.db.transaction() as session:
                    return await self._claim(session, req)
            except IntegrityError:
                # Another request inserted the same key between our read and our insert:
                # read it again, it now exists.
                continue
        raise IdempotencyKeyInUse()

    async def _claim(self, session: AsyncSession, req: IdempotentRequest) -> StoredResponse | None:
        now = _wall_now()
        row = await session.scalar(
            select(IdempotencyRecord)
            .where(
                IdempotencyRecord.account_id == req.account_id,
                IdempotencyRecord.caller == req.caller,
                IdempotencyRecord.key == req.key,
            )
            .with_for_update()
        )
        if row is None:
            session.add(
                IdempotencyRecord(
                    account_id=req.account_id,
                    caller=req.caller,
                    key=req.key,
                    fingerprint=req.fingerprint,
                    state=RUNNING,
                    locked_at=now,
                    created_at=now,
                )
            )
            await session.flush()
            return None
        if row.fingerprint != req.fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request body or path."
            )
        if row.state == DONE:
            assert row.response_status is not None
            return StoredResponse(row.response_status, row.response_body, replayed=True)
        if now - row.locked_at < self.lock:
            raise IdempotencyKeyInUse("The first request with this key is still running.")
        # The first request's process died while holding the key: take it over.
        row.locked_at = now
        return None

    async def store(
        self, session: AsyncSession, req: IdempotentRequest, status: int, body: Any
    ) -> None:
        """Record the response, in the caller's transaction (the one that made the change)."""
        row = await session.get(
            IdempotencyRecord, (req.account_id, req.caller, req.key), with_for_update=True
        )
        if row is None:  # cleaned up meanwhile (a request running for over a day)
            return
        row.state = DONE
        row.response_status = status
        row.response_body = body

    async def release(self, req: IdempotentRequest) -> None:
        """Forget a claim whose outcome a retry may change."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.account_id == req.account_id,
                    IdempotencyRecord.caller == req.caller,
                    IdempotencyRecord.key == req.key,
                    IdempotencyRecord.state == RUNNING,
                )
            )

    async def finish_with_error(self, req: IdempotentRequest, exc: AppError) -> None:
        """Store a final error (e.g. 409 seats_assigned) or release a retryable one."""
        if exc.status >= 500 or exc.code in RETRYABLE_CODES:
            await self.release(req)
            return
        body = json.loads(bytes(error_response(exc).body))
        async with self.db.transaction() as session:
            await self.store(session, req, exc.status, body)

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
            async with self.db.transaction() as session:
                await self.store(session, req, reply.status, reply.body)
            return reply

        return await self._guarded(req, then_store)

    async def _guarded(
        self, req: IdempotentRequest, work: Callable[[], Awaitable[StoredResponse]]
    ) -> StoredResponse:
        """Claim the key (or replay it), run ``work``, and settle the claim by its outcome."""
        stored = await self.claim(req)
        if stored is not None:
            return stored
        try:
            return await work()
        except AppError as exc:
            await self.finish_with_error(req, exc)
            raise
        except BaseException:
            await self.release_quietly(req)
            raise

    async def release_quietly(self, req: IdempotentRequest) -> None:
        try:
            await self.release(req)
        except Exception:
            # The database may be why the request failed; the claim then expires after
            # ``lock_seconds`` and a retry takes it over. The original error is what matters.
            log.warning("could not release idempotency key", exc_info=True)
