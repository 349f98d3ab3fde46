"""Engine, sessions and the declarative base.

One async engine per process. A request gets one session whose transaction the dependency
commits or rolls back; services only ``flush()``. The purchase flow is the one exception: it
must commit a pending invoice before it calls the payment gateway (SPEC §6), so it opens its
own short transactions through ``Database.transaction()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import MetaData, Select, event
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.util import greenlet_spawn

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 10, autocommit: bool = False) -> AsyncEngine:
    """An async engine; on SQLite every transaction takes the write lock up front.

    ``autocommit`` (PostgreSQL): every connection of the pool is in autocommit mode from the
    start, for reads that are one statement.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # No pool: a pooled connection keeps the file it first opened, so a database file
        # replaced or restored while the service runs would go unnoticed. Opening a SQLite
        # file costs a fraction of a millisecond.
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, poolclass=NullPool, hide_parameters=True
        )
        _serialize_sqlite_writes(engine)
        return engine
    return create_async_engine(
        url,
        # Set once per connection when it is opened, never toggled per checkout.
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
        # Bound parameters (emails, names, payment methods) stay out of error messages and
        # so out of the logs of unexpected errors.
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pool_pre_ping: on asyncpg it is BEGIN, a ping and ROLLBACK, three round trips
        # before every request. A connection the database dropped fails its first statement
        # instead (503, never a wrong answer), and SQLAlchemy then discards the whole pool.
        pool_recycle=1800,
        # A connection checked out while the database restarts must not hang a request.
        connect_args={
            "timeout": 5,
            "command_timeout": 30,
            # Names our sessions in pg_stat_activity, for operators (and the fault tests).
            "server_settings": {"application_name": "seats"},
        },
    )


def _serialize_sqlite_writes(engine: AsyncEngine) -> None:
    # SQLite has no SELECT ... FOR UPDATE. BEGIN IMMEDIATE takes the database's write lock at
    # the start of each transaction, so two requests can never both read "one seat left"
    # and both take it: the second waits (busy timeout) and then reads the first's result.
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class PreparedRead:
    """A one-row read built once in SQLAlchemy Core, with its PostgreSQL text compiled once.

    On PostgreSQL ``Database.read_one`` sends the text straight to the asyncpg connection under
    SQLAlchemy's pool (asyncpg prepares it once per connection and keeps it): no Connection,
    no compiled-cache lookup, no result processing, which cost five times the round trip's
    own client side (issue 13: 92-103 against 18-20 us). So it is for statements whose columns
    need no conversion on PostgreSQL (text, booleans, ``timestamptz``); SQLite runs the Core
    statement as any other.
    """

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        self.sql = str(compiled)
        self.order = tuple(compiled.positiontup or ())
        # The statement's own literals (a ``== 1``), which a caller's params do not name.
        self.defaults = dict(compiled.params)


# The server went away or is shutting down: every pooled connection is as dead as this one.
# InternalClientError too: a connection whose backend was terminated while idle may still be
# consuming the server's last error when it is next used, and asyncpg then refuses the
# statement with "another operation is in progress" instead of "connection is closed".
DRIVER_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InternalClientError,
    OSError,
)


class Database:
    """The engine and session factory of one process."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # One-statement reads run outside a transaction on PostgreSQL (no BEGIN, no COMMIT),
        # on a pool of their own whose connections are opened in autocommit mode: an
        # execution_options(isolation_level=...) view of the main engine would switch the
        # level on every checkout and back on every return (178 against 139 us, issue 13).
        # SQLite keeps its transactions: its connections issue their own BEGIN IMMEDIATE.
        self.reads = self.engine
        if not self.is_sqlite:
            self.reads = create_engine(url, pool_size=pool_size, autocommit=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    def read_session(self) -> AsyncSession:
        """A session for reads of one statement each, with ORM rows: on PostgreSQL outside any
        transaction (no BEGIN, no COMMIT); SQLite's connections still take theirs. Never for
        writes, nor for reads that must agree with each other under a lock."""
        return AsyncSession(self.reads, expire_on_commit=False)

    async def read_one(self, read: PreparedRead, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row of a one-statement read, or None, outside any transaction."""
        if self.is_sqlite:
            async with self.reads.connect() as conn:
                first: Sequence[Any] | None = (await conn.execute(read.statement, params)).first()
                return first
        fairy = await self.reads.raw_connection()
        driver: Any = fairy.driver_connection
        values = {**read.defaults, **params}
        try:
            row: Sequence[Any] | None = await driver.fetchrow(
                read.sql, *[values[name] for name in read.order]
            )
        except BaseException as exc:
            # What SQLAlchemy's own execution would do: a connection in an unknown state is
            # never handed out again, a lost server discards the pool, and the error is the
            # DBAPIError the error mapping knows (503 when the database is away), with no
            # parameters in its message.
            await greenlet_spawn(fairy.invalidate, exc)
            await greenlet_spawn(fairy.close)
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, DRIVER_CONNECTION_LOST):
                await self.reads.dispose(close=False)
            if isinstance(exc, (*DRIVER_CONNECTION_LOST, TimeoutError)):
                raise OperationalError(read.sql, None, exc, connection_invalidated=True) from exc
            raise DBAPIError(read.sql, None, exc) from exc
        # Checkin may close an overflow connection: driver calls need SQLAlchemy's greenlet.
        await greenlet_spawn(fairy.close)
        return row

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.reads is not self.engine:
            await self.reads.dispose()
