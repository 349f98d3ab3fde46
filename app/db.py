"""Engine, the units of work, and the declarative base.

``Database`` is the only door to the database, and it has two kinds of unit:

* ``transaction()``: a session in one transaction, committed on success, rolled back on error.
  Every write, and every group of reads that must agree, runs in one. A request's session is
  one (app/deps.py); the purchase flow opens its own short ones, since it must commit a pending
  invoice before it calls the payment gateway (SPEC §6).
* a single read: ``read()`` (a session whose every statement stands alone, outside any
  transaction on PostgreSQL) and ``read_one()`` (the hot path's one-row read, straight on the
  driver).

Both are safe behind a transaction pooler (PgBouncer ``pool_mode=transaction``), which lends
the client a server connection for one transaction, or for one statement outside any: the
next may run on another server connection, shared with other clients. So nothing may depend
on a connection's session state between units, and no named server-side statement may
outlive the unit that prepared it: asyncpg's default names (``__asyncpg_stmt_1__``) collide
with another client's on a shared server connection, or are missing on the next one. With
``SEATS_DATABASE_POOLER=transaction`` every statement is an unnamed one
(``pooled_connect_args``): parsed, bound and executed within one Sync, so it never leaves the
server connection it ran on. A pooler that maps named statements itself (PgBouncer 1.21+ with
``max_prepared_statements``) keeps the faster ``none``: asyncpg's per-connection cache of
named statements.

One pool per process, of ``SEATS_DATABASE_POOL_SIZE`` connections at most (no overflow), plus
the agent-check cache's listener (app/entitlements.py), which never goes through the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import MetaData, Select, TextClause, event, text
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

from app.config import Pooler, Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# A connection waits this long for a free one of the pool before the request fails (503).
POOL_TIMEOUT_SECONDS = 10


def _unnamed_statement() -> str:
    return ""


def pooled_connect_args(pooler: Pooler) -> dict[str, Any]:
    """The driver's arguments that make every statement safe behind ``pooler``.

    ``transaction``: the dialect's statements are unnamed, and asyncpg keeps no cache of
    named ones. asyncpg then marks an unnamed statement "unprepared", and sends its Parse
    again with every Bind, Execute and Sync: each execution runs whole on one server
    connection wherever the pooler puts it, and leaves nothing there that another client could
    run. The dialect's own cache still keeps each statement's description per connection, so
    an execution is one round trip, as with named statements. Unique names (SQLAlchemy's
    recipe for PgBouncer) instead cost a round trip to prepare and one to close each statement,
    and leave it on a server connection whenever the close goes through another one
    (``bench/pooler_statements.py`` measures the options).
    """
    if pooler == "transaction":
        return {
            "statement_cache_size": 0,
            "prepared_statement_name_func": _unnamed_statement,
        }
    return {}


def create_engine(url: str, *, pool_size: int = 10, pooler: Pooler = "none") -> AsyncEngine:
    """An async engine of ``pool_size`` connections at most; on SQLite every transaction takes
    the write lock up front."""
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
        # Bound parameters (emails, names, payment methods) stay out of error messages and
        # so out of the logs of unexpected errors.
        hide_parameters=True,
        # The setting is the budget: a worker never opens more than pool_size connections,
        # so an operator can add up a fleet's connections (instances x workers x pool).
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_SECONDS,
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
            **pooled_connect_args(pooler),
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
    SQLAlchemy's pool (asyncpg prepares it once per connection and keeps it, or, behind a
    transaction pooler, sends it unnamed with its Bind and Execute): no Connection,
    no compiled-cache lookup, no result processing, which cost five times the round trip's
    own client side (issue 13: 92-103 against 18-20 us). So it is for statements whose columns
    need no conversion on PostgreSQL (text, booleans, ``timestamptz``); SQLite runs the Core
    statement as any other.

    ``pooled``, if given, is what runs instead behind a transaction pooler: the same row from
    a server-side function, whose query PL/pgSQL plans once per server connection and keeps,
    where the statement itself, sent unnamed, is planned again on every execution. Its
    ``:name`` parameters are the statement's.
    """

    def __init__(
        self, statement: Select[*tuple[Any, ...]], *, pooled: TextClause | None = None
    ) -> None:
        self.statement = statement
        compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        self.sql = str(compiled)
        self.order = tuple(compiled.positiontup or ())
        # The statement's own literals (a ``== 1``), which a caller's params do not name.
        self.defaults = dict(compiled.params)
        self.pooled_sql, self.pooled_order = self.sql, self.order
        if pooled is not None:
            compiled = pooled.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
            self.pooled_sql = str(compiled)
            self.pooled_order = tuple(compiled.positiontup or ())


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
    """The engine of one process and its two units of work (see the module's docstring)."""

    def __init__(self, url: str, *, pool_size: int = 10, pooler: Pooler = "none") -> None:
        self.url = url
        self.pooler = pooler
        self.engine = create_engine(url, pool_size=pool_size, pooler=pooler)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Single reads run outside a transaction on PostgreSQL (no BEGIN, no COMMIT): the
        # same pool, each connection switched to autocommit while it is checked out (on
        # asyncpg an attribute of the connection, no round trip). SQLite keeps its
        # transactions: its connections issue their own BEGIN IMMEDIATE.
        self._reads = self.engine
        if not self.is_sqlite:
            self._reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The process's database as configured: every command builds it here."""
        return cls(
            settings.database_url,
            pool_size=settings.database_pool_size,
            pooler=settings.database_pooler,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def dialect_name(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads of one statement each, with ORM rows: on PostgreSQL outside any
        transaction (no BEGIN, no COMMIT); SQLite's connections still take theirs. Never for
        writes, nor for reads that must agree with each other under a lock."""
        async with AsyncSession(self._reads, expire_on_commit=False) as session:
            yield session

    async def read_one(self, read: PreparedRead, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row of a one-statement read, or None, outside any transaction."""
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                first: Sequence[Any] | None = (await conn.execute(read.statement, params)).first()
                return first
        # A connection of the pool is idle between units (the dialect begins its transaction
        # on the first statement), so a statement sent on the driver runs on its own.
        fairy = await self.engine.raw_connection()
        driver: Any = fairy.driver_connection
        values = {**read.defaults, **params}
        try:
            row: Sequence[Any] | None
            if self.pooler == "transaction":
                args = [values[name] for name in read.pooled_order]
                row = await (await self._unnamed(fairy, read.pooled_sql)).fetchrow(*args)
            else:
                args = [values[name] for name in read.order]
                row = await driver.fetchrow(read.sql, *args)
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
                await self.engine.dispose(close=False)
            if isinstance(exc, (*DRIVER_CONNECTION_LOST, TimeoutError)):
                raise OperationalError(read.sql, None, exc, connection_invalidated=True) from exc
            raise DBAPIError(read.sql, None, exc) from exc
        await greenlet_spawn(fairy.close)
        return row

    @staticmethod
    async def _unnamed(fairy: Any, sql: str) -> Any:
        """The connection's unnamed statement for ``sql``, described once and kept with the
        connection (dropped with it): every execution sends its Parse again with its Bind,
        Execute and Sync, one round trip that runs whole on whichever server connection the
        pooler picks, where ``fetchrow`` without a cache describes the statement every time
        (two)."""
        statements: dict[str, Any] = fairy.info.setdefault("seats_unnamed", {})
        statement = statements.get(sql)
        if statement is None:
            statement = statements[sql] = await fairy.driver_connection.prepare(sql, name="")
        return statement

    async def behind_pooler(self) -> bool:
        """Whether a pooler answers for PostgreSQL: the process id a connection was given at
        its start is not its server's (PgBouncer hands out ids of its own). Reliable for
        "is there a pooler", silent on its mode and version, hence a setting and a warning
        rather than detection."""
        if self.is_sqlite:
            return False
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            backend = await conn.scalar(text("SELECT pg_backend_pid()"))
            return bool(driver.get_server_pid() != backend)

    async def dispose(self) -> None:
        await self.engine.dispose()
