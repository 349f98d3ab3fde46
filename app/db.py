"""Engine, the units of work, and the declarative base.

``Database`` is the only door to the database, and it has three kinds of unit:

* ``transaction()``: a session in one transaction, committed on success, rolled back on error.
  Every write, and every group of reads that must agree, runs in one. A request's session is
  one (app/deps.py); the purchase flow opens its own short ones, since it must commit a pending
  invoice before it calls the payment gateway (SPEC §6).
* ``driver_transaction()``: one transaction straight on the driver's connection, for the seat
  writes only (PostgreSQL; SQLite runs them in ``transaction()``): their statements compiled
  once from Core, with no session (app/fast/driver.py).
* a single read: ``read()`` (a session whose every statement stands alone, outside any
  transaction on PostgreSQL) and ``read_one()`` (the hot path's one-row read, straight on the
  driver: app/fast/driver.py).

All are safe behind a transaction pooler (PgBouncer ``pool_mode=transaction``), which lends
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

Standbys (``SEATS_DATABASE_READ_URL``): one more pool per standby, for the reads that tolerate
lag, and only through ``replica_read()`` and ``read_one(..., account_id=...)``. A standby
answers for an account only once it is known to have replayed the position the account needs
(app/positions.py); otherwise, or when it cannot be reached, the primary answers. The known
position comes from a round trip *before* the read: PostgreSQL takes a statement's snapshot
before it evaluates ``pg_last_wal_replay_lsn()`` in it, so a position returned beside the rows
may be newer than the rows, and only a position read earlier bounds what a later snapshot sees.
Each standby's replayed position is remembered (it only moves forward), refreshed by every
read on it, and forgotten when its connection fails (a standby rebuilt from an older copy).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
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
from app.fast.driver import DRIVER_CONNECTION_LOST as DRIVER_CONNECTION_LOST  # the error mapping's
from app.fast.driver import DRIVER_ERRORS, REPLAYED, bound, driver_failed, fetch_row
from app.fast.driver import DriverTransaction as DriverTransaction  # the seat writes' unit
from app.fast.driver import PreparedRead as PreparedRead  # what a repository's reads are built as
from app.fast.driver import PreparedStatement as PreparedStatement  # and its writes on the driver
from app.positions import UNREACHABLE, Positions, parse_lsn

log = logging.getLogger(__name__)

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


# What a failed standby read falls back from: the standby is away or refuses (any database
# error of the driver or SQLAlchemy's wrapping of it).
REPLICA_FAILED = (DBAPIError, *DRIVER_CONNECTION_LOST, TimeoutError)

REPLICA_READS = Counter(
    "seats_replica_reads_total",
    "Reads that SEATS_DATABASE_READ_URL could serve, by where they went: standby, primary_behind "
    "(the standby had not replayed what the account needs), primary_failed (it could not be "
    "reached)",
    ["outcome"],
)
# The primary's insert position: after the commit record of every transaction committed, even
# one whose record is not written out yet (``synchronous_commit = off``).
WRITTEN = "SELECT pg_current_wal_insert_lsn()::text"


class Replica:
    """One standby's pool, and the position it was last seen to have replayed."""

    def __init__(self, url: str, *, pool_size: int, pooler: Pooler) -> None:
        self.engine = create_engine(url, pool_size=pool_size, pooler=pooler).execution_options(
            isolation_level="AUTOCOMMIT"
        )
        self.replayed = 0

    def saw(self, lsn: str | None) -> None:
        # NULL: not in recovery (a promoted standby), whose position says nothing.
        if lsn is not None:
            self.replayed = max(self.replayed, parse_lsn(lsn))

    def failed(self) -> None:
        self.replayed = 0


class Database:
    """The engine of one process and its units of work (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pooler: Pooler = "none",
        read_urls: Sequence[str] = (),
    ) -> None:
        self.url = url
        self.pooler = pooler
        self.engine = create_engine(url, pool_size=pool_size, pooler=pooler)
        # Fed by the agent-check cache's listener and by the writes of this worker.
        self.positions = Positions()
        self.replicas = (
            []
            if self.is_sqlite
            else [Replica(u, pool_size=pool_size, pooler=pooler) for u in read_urls]
        )
        self._next_replica = 0
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
            read_urls=settings.read_urls,
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

    def _replica_for(self, account_id: str, at_least: int = 0) -> tuple[Replica, int] | None:
        """A standby that may answer for the account and the position it must have replayed
        (at least ``at_least``, the caller's own), or None when the primary must answer (no
        standby, or the position is unknown)."""
        if not self.replicas:
            return None
        needed = max(self.positions.needed(account_id), at_least)
        if needed == UNREACHABLE:
            return None
        self._next_replica = (self._next_replica + 1) % len(self.replicas)
        return self.replicas[self._next_replica], needed

    async def read_one(
        self, read: PreparedRead, params: Mapping[str, Any], *, account_id: str | None = None
    ) -> Sequence[Any] | None:
        """The first row of a one-statement read, or None, outside any transaction. With
        ``account_id``, a standby answers when it has replayed what the account needs."""
        if account_id is not None:
            chosen = self._replica_for(account_id)
            if chosen is not None:
                answered, row = await self._read_one_on(*chosen, read, params)
                if answered:
                    return row
        return await self._read_one(self.engine, read, params)

    async def _read_one_on(
        self, replica: Replica, needed: int, read: PreparedRead, params: Mapping[str, Any]
    ) -> tuple[bool, Sequence[Any] | None]:
        """``(True, row)`` from the standby, or ``(False, None)`` when it may not answer (not
        known to have replayed ``needed``) or cannot (the caller reads the primary)."""
        try:
            if replica.replayed < needed:
                # Behind as far as we know: one round trip to learn where it is now.
                async with replica.engine.connect() as conn:
                    replica.saw(await conn.scalar(text(REPLAYED)))
                if replica.replayed < needed:
                    REPLICA_READS.labels("primary_behind").inc()
                    return False, None
            row = await self._read_one(replica.engine, read, params, replayed=True)
        except REPLICA_FAILED as exc:
            replica.failed()
            REPLICA_READS.labels("primary_failed").inc()
            log.warning("standby read failed, reading the primary: %s", type(exc).__name__)
            return False, None
        assert row is not None
        REPLICA_READS.labels("standby").inc()
        replica.saw(row[0])
        return True, (None if row[1] is None else tuple(row[2:]))

    async def _read_one(
        self,
        engine: AsyncEngine,
        read: PreparedRead,
        params: Mapping[str, Any],
        *,
        replayed: bool = False,
    ) -> Sequence[Any] | None:
        """``read``'s first row on ``engine``; with ``replayed``, behind the standby's replayed
        position and a marker of whether the row exists (``app.fast.driver.with_replayed``)."""
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                first: Sequence[Any] | None = (await conn.execute(read.statement, params)).first()
                return first
        unnamed = self.pooler == "transaction"
        sql, args = bound(read, params, unnamed=unnamed, replayed=replayed)
        fairy = await engine.raw_connection()
        try:
            row: Sequence[Any] | None = await fetch_row(fairy, sql, args, unnamed=unnamed)
        except BaseException as exc:
            await driver_failed(engine, fairy, exc, sql)
        await greenlet_spawn(fairy.close)
        return row

    @asynccontextmanager
    async def driver_transaction(self) -> AsyncIterator[DriverTransaction]:
        """One transaction straight on the driver's connection (PostgreSQL only): BEGIN, the
        unit's statements (``DriverTransaction.first``), COMMIT; ROLLBACK when the unit raises
        an error of its own (a refusal). For the seat writes, whose session and execution
        machinery cost more than their statements (app/fast/driver.py).

        Safe behind a transaction pooler as the other units are: the pooler lends one server
        connection from BEGIN to the transaction's end, and with
        ``SEATS_DATABASE_POOLER=transaction`` every statement is an unnamed one, described
        once per client connection and never left on a server connection."""
        assert not self.is_sqlite, "SQLite runs its writes in transaction()"
        fairy = await self.engine.raw_connection()
        unit = DriverTransaction(fairy, unnamed=self.pooler == "transaction")
        # A plain BEGIN, as SQLAlchemy's own transactions on asyncpg send.
        driver: Any = fairy.driver_connection
        transaction = driver.transaction()
        own: Exception | None = None
        try:
            await transaction.start()
            try:
                yield unit
            except Exception as exc:
                if isinstance(exc, DRIVER_ERRORS):
                    raise
                own = exc
            if own is None:
                await transaction.commit()
            else:
                await transaction.rollback()
        except BaseException as exc:
            await driver_failed(self.engine, fairy, exc, unit.sql, transaction)
        await greenlet_spawn(fairy.close)
        if own is not None:
            raise own

    @asynccontextmanager
    async def replica_read(
        self, account_id: str, *, at_least: int = 0
    ) -> AsyncIterator[AsyncSession]:
        """A session for the account's reads that tolerate lag: on a standby that has
        replayed what the account needs and ``at_least`` (checked in a round trip before the
        reads, each of which then takes a later snapshot, as in a READ COMMITTED transaction),
        else a ``transaction()`` on the primary."""
        chosen = self._replica_for(account_id, at_least)
        if chosen is not None:
            replica, needed = chosen
            session = AsyncSession(replica.engine, expire_on_commit=False)
            try:
                replica.saw(await session.scalar(text(REPLAYED)))
                usable = replica.replayed >= needed
            except REPLICA_FAILED as exc:
                replica.failed()
                REPLICA_READS.labels("primary_failed").inc()
                log.warning("standby read failed, reading the primary: %s", type(exc).__name__)
                usable = False
            else:
                REPLICA_READS.labels("standby" if usable else "primary_behind").inc()
            if usable:
                try:
                    yield session
                finally:
                    await session.close()
                return
            await session.close()
        # On the primary as without standbys: one transaction.
        async with self.transaction() as session:
            yield session

    async def wrote(self, account_id: str) -> int | None:
        """Record that this worker's write for the account committed (read your writes): the
        primary's position now, at or after that commit. None without standbys."""
        if not self.replicas:
            return None
        async with self._reads.connect() as conn:
            position = parse_lsn(await conn.scalar(text(WRITTEN)))
        self.positions.wrote(account_id, position)
        return position

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
        for replica in self.replicas:
            await replica.engine.dispose()
