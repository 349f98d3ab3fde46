"""Engine, sessions and the declarative base.

One async engine per process. A request gets one session whose transaction the dependency
commits or rolls back; services only ``flush()``. The purchase flow is the one exception: it
must commit a pending invoice before it calls the payment gateway (SPEC §6), so it opens its
own short transactions through ``Database.transaction()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine; on SQLite every transaction takes the write lock up front."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

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


class Database:
    """The engine and session factory of one process."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # One-statement reads run outside a transaction on PostgreSQL (no BEGIN, no COMMIT).
        # SQLite keeps its transactions: its connections issue their own BEGIN IMMEDIATE.
        self.reads = self.engine
        if not self.is_sqlite:
            self.reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
