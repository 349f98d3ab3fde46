"""Time, injected: the system clock, or the database-stored test clock (SPEC §7).

Everything that needs "now" gets it from a ``Clock``; the domain core takes ``now`` as a plain
argument. The test clock lives in the database so that every worker process sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Integer, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, DriverTransaction, PreparedStatement
from app.sqltypes import UTCDateTime


class TestClockRow(Base):
    __tablename__ = "test_clock"
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    now: Mapped[datetime] = mapped_column(UTCDateTime)


class Clock(Protocol):
    # Whether "now" is stored in the database: a one-statement read then selects it in the
    # same statement (the test clock's row) and hands it to ``now_from``.
    stored: bool

    async def now(self, session: AsyncSession | AsyncConnection) -> datetime: ...

    def now_from(self, stored_now: datetime | None) -> datetime: ...


class SystemClock:
    """Wall-clock UTC time."""

    stored = False

    async def now(self, session: AsyncSession | AsyncConnection) -> datetime:
        return datetime.now(UTC)

    def now_from(self, stored_now: datetime | None) -> datetime:
        return datetime.now(UTC)


class DatabaseTestClock:
    """The time set by ``PUT /internal/v1/test-clock``, or wall-clock time until one is set."""

    stored = True

    async def now(self, session: AsyncSession | AsyncConnection) -> datetime:
        return self.now_from(
            await session.scalar(select(TestClockRow.now).where(TestClockRow.id == 1))
        )

    def now_from(self, stored_now: datetime | None) -> datetime:
        """The time of the clock's row as a read selected it (None: no time set)."""
        return stored_now if stored_now is not None else datetime.now(UTC)

    async def set(self, session: AsyncSession, now: datetime) -> None:
        row = await session.get(TestClockRow, 1)
        if row is None:
            session.add(TestClockRow(id=1, now=now))
        else:
            row.now = now
        await session.flush()


_STORED_NOW = PreparedStatement(select(TestClockRow.now).where(TestClockRow.id == 1))


async def now_on(clock: Clock, unit: DriverTransaction) -> datetime:
    """``clock``'s time in a driver transaction (a stored clock's row is read in it)."""
    if not clock.stored:
        return clock.now_from(None)
    row = await unit.first(_STORED_NOW, {})
    return clock.now_from(None if row is None else row[0])
