"""Measured: SQLAlchemy's execution cost five times the agent check's own round trip on asyncpg.

One-row reads straight on the asyncpg connection under SQLAlchemy's pool (``Database.read_one``
is their only caller): no Connection, no compiled-cache lookup, no result processing. The seat
writes run the same way, in a transaction on the driver (``DriverTransaction``, from
``Database.driver_transaction``): their statements (``PreparedStatement``) convert their values
with their columns' own types, compiled once. They lean
on the pool's connection record (``driver_connection``, ``info``, ``invalidate``) and on
asyncpg's statements (pinned in ``LEANS_ON``), so they are for statements whose columns need no
conversion on PostgreSQL (text, booleans, ``timestamptz``); SQLite runs the Core statement as
any other (app/db.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Select, TextClause
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

# The versions this was measured and tested with (tests/test_fast_paths.py).
LEANS_ON = {"sqlalchemy": ("2.1", "2.2"), "asyncpg": ("0.32", "0.33")}

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


# A statement sent on the driver failed: the database's answer, a lost connection or a timeout.
DRIVER_ERRORS = (asyncpg.PostgresError, *DRIVER_CONNECTION_LOST, TimeoutError)

# A type's conversion of one value, to or from the driver.
Convert = Callable[[Any], Any]

# The standby's replayed position, read in the same statement as a row (``with_replayed``).
REPLAYED = "SELECT pg_last_wal_replay_lsn()::text"


class PreparedRead:
    """A one-row read built once in SQLAlchemy Core, with its PostgreSQL text compiled once.

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


class PreparedStatement:
    """A statement of one row at most built once in SQLAlchemy Core (its one source), compiled
    once for PostgreSQL with its types' conversions, as SQLAlchemy's execution would apply
    them: its parameters' (JSON, UTC datetimes) and its columns' (enums): for
    ``DriverTransaction.first``."""

    def __init__(self, statement: Select[Any]) -> None:
        dialect = asyncpg_dialect()  # type: ignore[no-untyped-call]
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        # The statement's own literals (a ``+ 1``), which a caller's params do not name.
        self.defaults = dict(compiled.params)
        binds = compiled.binds
        self.binds: tuple[tuple[str, Convert | None], ...] = tuple(
            (name, binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or ()
        )
        self.results: tuple[Convert | None, ...] = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        )

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = {**self.defaults, **params}
        return [
            values[name] if process is None else process(values[name])
            for name, process in self.binds
        ]

    def row(self, record: Any) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for value, process in zip(record, self.results, strict=True)
        )


class DriverTransaction:
    """A transaction on the asyncpg connection of the pool's record ``fairy``, opened and
    ended by ``Database.driver_transaction`` (which also maps the driver's errors)."""

    def __init__(self, fairy: Any, *, unnamed: bool) -> None:
        self.fairy = fairy
        self.unnamed = unnamed
        self.sql = "BEGIN"  # the statement last sent, named by an error

    async def first(
        self, statement: PreparedStatement, params: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row of ``statement`` with ``params``, converted as SQLAlchemy would."""
        self.sql = statement.sql
        record = await fetch_row(
            self.fairy, statement.sql, statement.arguments(params), unnamed=self.unnamed
        )
        return None if record is None else statement.row(record)


def with_replayed(sql: str) -> str:
    """``sql`` (one row at most) with the standby's replayed position in front and a marker of
    whether the row exists, in one statement: one row always. ``sql`` is a statement compiled
    from our own Core (``PreparedRead``), its values bound as parameters."""
    return (
        f"SELECT {REPLAYED.removeprefix('SELECT ')}, r.* FROM (SELECT 1) AS one "  # noqa: S608
        f"LEFT JOIN (SELECT true AS found, q.* FROM ({sql}) AS q LIMIT 1) AS r ON true"
    )


def bound(
    read: PreparedRead, params: Mapping[str, Any], *, unnamed: bool, replayed: bool
) -> tuple[str, list[Any]]:
    """The text to send for ``read`` and its arguments in order. ``unnamed``: behind a
    transaction pooler; ``replayed``: on a standby (``with_replayed``)."""
    values = {**read.defaults, **params}
    sql, order = (read.pooled_sql, read.pooled_order) if unnamed else (read.sql, read.order)
    return (with_replayed(sql) if replayed else sql), [values[name] for name in order]


async def fetch_row(fairy: Any, sql: str, args: Sequence[Any], *, unnamed: bool) -> Any:
    """The first row of ``sql`` on the asyncpg connection of the pool's record ``fairy``. A
    connection of the pool is idle between units (the dialect begins its transaction on the
    first statement), so a statement sent on the driver runs on its own."""
    if unnamed:
        return await (await _unnamed(fairy, sql)).fetchrow(*args)
    return await fairy.driver_connection.fetchrow(sql, *args)


async def _unnamed(fairy: Any, sql: str) -> Any:
    """The connection's unnamed statement for ``sql``, described once and kept with the
    connection (dropped with it): every execution sends its Parse again with its Bind, Execute
    and Sync, one round trip that runs whole on whichever server connection the pooler picks,
    where ``fetchrow`` without a cache describes the statement every time (two)."""
    statements: dict[str, Any] = fairy.info.setdefault("seats_unnamed", {})
    statement = statements.get(sql)
    if statement is None:
        statement = statements[sql] = await fairy.driver_connection.prepare(sql, name="")
    return statement


async def driver_failed(
    engine: AsyncEngine, fairy: Any, exc: BaseException, sql: str, transaction: Any = None
) -> NoReturn:
    """What SQLAlchemy's own execution would do when a statement sent on the driver
    fails: an error the server reported inside ``transaction`` (a deadlock, a duplicate
    prepared statement) is rolled back and the connection goes back to the pool; a
    connection in an unknown state is never handed out again, a lost server discards the
    pool; and the error is the DBAPIError the error mapping knows (503 when the database is
    away), with no parameters in its message.

    Closing a connection in the middle of a transaction would also make a transaction pooler
    close the server connection it lent, and with it every statement prepared there."""
    reported = isinstance(exc, asyncpg.PostgresError) and not isinstance(
        exc, DRIVER_CONNECTION_LOST
    )
    if reported and transaction is not None and await _rolled_back(transaction):
        await greenlet_spawn(fairy.close)
        raise DBAPIError(sql, None, exc) from exc
    await greenlet_spawn(fairy.invalidate, exc)
    await greenlet_spawn(fairy.close)
    if not isinstance(exc, Exception):
        raise exc
    if isinstance(exc, DRIVER_CONNECTION_LOST):
        await engine.dispose(close=False)
    if isinstance(exc, (*DRIVER_CONNECTION_LOST, TimeoutError)):
        raise OperationalError(sql, None, exc, connection_invalidated=True) from exc
    raise DBAPIError(sql, None, exc) from exc


async def _rolled_back(transaction: Any) -> bool:
    """Whether the failed transaction could be rolled back (the connection is then usable)."""
    try:
        await transaction.rollback()
    except Exception:
        return False
    return True
