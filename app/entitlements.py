"""The agent check's answers, cached per worker and dropped on PostgreSQL's word.

The inbox asks the agent check on every page load, and its answer changes only when a seat is
assigned or freed, a user removed, a plan's status or trial end changed, or the test clock
set. On PostgreSQL a trigger sends ``NOTIFY seats_access, '<account id>'`` in the same
transaction as each such change (migration 0007), whichever code or tool made it. Every worker
listens on a connection of its own and drops the account's answers when one arrives, so a
revocation reaches every worker as soon as PostgreSQL delivers it (a millisecond or two after
the commit; the contract is 100 ms).

What keeps a stale answer out:

* A read that raced an invalidation is never stored: ``token`` is taken before the read, and
  ``put`` stores only if no notification for the account (and no flush) came in between.
* Nothing is served or stored unless the listening connection is up. When it drops, the whole
  cache is flushed (notifications sent meanwhile are lost); once it listens again the cache is
  flushed again and answers are cached anew.
* The listener proves on every ping that its connection's own backend still listens; when it
  cannot (a pooler in between, a backend that lost its LISTEN), the cache stops serving at once
  (``AccessListener``).
* A cached answer is served for ``ttl`` seconds at most: the bound on a connection that died
  without a word, between two of the listener's pings.
* With standbys (SEATS_DATABASE_READ_URL), a miss may be read on a standby, and stored, only
  when the standby has replayed the position the listener recorded for the account: on each
  batch of notifications it reads ``pg_current_wal_insert_lsn()`` on the primary
  (app/positions.py).

Time is not cached: the trial's end is, and the check compares it with the clock's time on
every request, so a trial ends exactly when it ends. The stored test clock's time is cached as
one more entry, dropped by its own notification.

SQLite has no NOTIFY: there the cache never serves (the listener is never started).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url

from app.positions import Positions, parse_lsn

log = logging.getLogger(__name__)

CHANNEL = "seats_access"
# The payload of a change every account's answer depends on (the test clock, a TRUNCATE).
EVERYTHING = "*"

Token = tuple[int, int]


class EntitlementCache:
    """Answers by account and key, each with the time it was stored. Not thread-safe: one per
    event loop (a worker process has one)."""

    def __init__(
        self, *, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._accounts: dict[str, dict[Hashable, tuple[Any, float]]] = {}
        self._entries = 0
        # Bumped by every flush: a token taken before one never stores.
        self._epoch = 0
        # Bumped by every invalidation of the account; forgotten at a flush (the epoch moved).
        self._generations: dict[str, int] = {}
        self._shared: tuple[Any, float] | None = None
        self.serving = False

    def __len__(self) -> int:
        return self._entries

    # Reads -------------------------------------------------------------------------------

    def get(self, account_id: str, key: Hashable) -> Any | None:
        """The answer stored for ``key`` of the account, or None (none, too old, or the cache
        is not serving)."""
        entries = self._accounts.get(account_id)
        if entries is None:
            return None
        entry = entries.get(key)
        if entry is None or self._clock() - entry[1] >= self.ttl:
            return None
        return entry[0]

    def get_shared(self) -> tuple[bool, Any]:
        """``(True, value)`` for the entry every account shares (the test clock's time), or
        ``(False, None)``."""
        entry = self._shared
        if entry is None or self._clock() - entry[1] >= self.ttl:
            return False, None
        return True, entry[0]

    def token(self, account_id: str) -> Token:
        """Taken before the read whose answer ``put`` may store."""
        return self._epoch, self._generations.get(account_id, 0)

    def put(self, account_id: str, key: Hashable, value: Any, token: Token) -> None:
        """Store ``value`` unless the account changed (or the cache was flushed) since
        ``token`` was taken, or the cache is not serving."""
        if not self.serving or token != self.token(account_id):
            return
        entries = self._accounts.get(account_id)
        if entries is None or key not in entries:
            if self._entries >= self.max_entries:
                self._evict_oldest_account()
                entries = self._accounts.get(account_id)
            if entries is None:
                entries = self._accounts[account_id] = {}
            self._entries += 1
        entries[key] = (value, self._clock())

    def put_shared(self, value: Any, epoch: int) -> None:
        """Store the shared entry unless a flush came since ``epoch`` (a token's first part)
        was taken."""
        if self.serving and epoch == self._epoch:
            self._shared = (value, self._clock())

    # Invalidation ------------------------------------------------------------------------

    def invalidate(self, account_id: str) -> None:
        """Drop the account's answers, and every read of it in flight from being stored."""
        if account_id == EVERYTHING:
            self.flush()
            return
        if len(self._generations) >= self.max_entries and account_id not in self._generations:
            # One number per account changed since the last flush: bounded by a flush, which
            # is as safe (every read in flight is refused) and costs one refill.
            self.flush()
        self._generations[account_id] = self._generations.get(account_id, 0) + 1
        entries = self._accounts.pop(account_id, None)
        if entries is not None:
            self._entries -= len(entries)

    def flush(self) -> None:
        """Drop everything, and every read in flight from being stored."""
        self._epoch += 1
        self._accounts.clear()
        self._generations.clear()
        self._shared = None
        self._entries = 0

    def listening(self) -> None:
        """The listener's connection listens: what was missed is flushed, and answers are
        cached from now on."""
        self.flush()
        self.serving = True

    def deaf(self) -> None:
        """The listener's connection is gone: flush, and cache nothing until it is back."""
        self.serving = False
        self.flush()

    def _evict_oldest_account(self) -> None:
        # The account first stored is dropped whole: dicts keep insertion order.
        oldest = next(iter(self._accounts))
        self._entries -= len(self._accounts.pop(oldest))


def listener_connect_args(database_url: str) -> dict[str, Any]:
    """The service's SQLAlchemy URL as asyncpg's keyword arguments, read by the engine's own
    dialect, so the listener connects where the engine does: every ``host=`` of a multi-host
    URL with its port, in order, and ``target_session_attrs`` (a DSN string keeps only the
    last ``host=``, which after a failover may be a standby or a dead server)."""
    dialect: Any = asyncpg_dialect()  # type: ignore[no-untyped-call]
    _, kwargs = dialect.create_connect_args(make_url(database_url))
    # The dialect's own statement cache setting is no driver argument.
    kwargs.pop("prepared_statement_cache_size", None)
    return dict(kwargs)


LISTENING = Gauge(
    "seats_access_cache_listening",
    "1 while the agent-check cache's listener has proved it listens (and the cache serves); "
    "0 while the check reads the database (the lowest of the live workers)",
    multiprocess_mode="livemin",
)
STOPS = Counter(
    "seats_access_cache_stops_total",
    "Times the agent-check cache stopped serving, by reason",
    ["reason"],
)


# The listening connection (or the server) is gone; anything else is an error of its own.
LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    ConnectionError,
    OSError,
    TimeoutError,
)


class NotListening(Exception):
    """The listener cannot prove that it listens; ``reason`` is the metric's label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# One round trip, unnamed (the connection has no statement cache): which backend answers,
# and whether it is listening on the channel.
PROOF = "SELECT pg_backend_pid(), $1::text IN (SELECT pg_listening_channels())"
# Read on the primary after notifications arrived: at or after their changes' commit records
# (a position taken in the trigger would be before its transaction's commit record). The
# insert position, not ``pg_current_wal_lsn()`` (the write position): under
# ``synchronous_commit = off`` a commit record may still be in the WAL buffers after its
# notification is sent, and a standby at the write position would not show it yet.
POSITION = "SELECT pg_current_wal_insert_lsn()::text"


class AccessListener:
    """One worker's ``LISTEN seats_access`` connection, kept open: it feeds ``cache`` and
    tells it when it listens and when it stops.

    The cache serves only while the listener can prove, on every ping (each
    ``ping_seconds``), that the connection it listens on is the one PostgreSQL delivers
    notifications to: the backend answering the ping is the one whose process id the
    connection was given at its start-up (and so the one that ran LISTEN), and it is
    listening on the channel. Through a pooler (a listen URL pointed at PgBouncer by
    mistake) the pooler answers the start-up with a process id of its own, and in
    transaction mode the ping may run on another server connection, so the proof fails from
    the first ping and the cache never serves: a notification delivered to a server
    connection no client is linked to is dropped without a word. When the proof fails or
    the connection drops, the cache stops serving at once (flushed), ``LISTENING`` goes to 0,
    ``STOPS`` counts the reason, one log line says why, and the agent check reads the
    database until a new connection proves it listens. It reconnects every
    ``retry_seconds``, to whichever host of the URL takes writes (``listener_connect_args``):
    after a failover, the promoted standby once it is promoted.
    """

    def __init__(
        self,
        database_url: str,
        cache: EntitlementCache,
        *,
        ping_seconds: float = 1.0,
        retry_seconds: float = 0.5,
        positions: Positions | None = None,
    ) -> None:
        self.connect_args = listener_connect_args(database_url)
        self.cache = cache
        # With standbys: where each notified account's changes end in the WAL.
        self.positions = positions
        self._wake = asyncio.Event()
        self.ping_seconds = ping_seconds
        self.retry_seconds = retry_seconds
        self.refused_retry_seconds = 10.0
        self._task: asyncio.Task[None] | None = None
        # The reason last logged: a listener that keeps failing the same way says so once.
        self._last_reason: str | None = None
        # Set each time the connection listens (tests and readiness wait on it).
        self.listening = asyncio.Event()
        # The PostgreSQL backend that listens, while one does.
        self.backend_pid: int | None = None
        LISTENING.set(0)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._deaf()

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except NotListening as exc:
                self._stopped(exc.reason, str(exc))
                if exc.reason == "not_direct":
                    # A pooler does not turn into PostgreSQL: no need to knock twice a second.
                    await asyncio.sleep(self.refused_retry_seconds)
            except LOST as exc:
                self._stopped("connection_lost", f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                self._stopped("error", f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.retry_seconds)

    def _deaf(self) -> None:
        self.backend_pid = None
        self.listening.clear()
        self.cache.deaf()
        if self.positions is not None:
            self.positions.deaf()
        LISTENING.set(0)

    def _stopped(self, reason: str, detail: str) -> None:
        was_serving = self.cache.serving
        self._deaf()
        if was_serving or reason != self._last_reason:
            STOPS.labels(reason).inc()
            log.error(
                "access cache not serving (%s): %s; the agent check reads the database",
                reason,
                detail,
            )
        self._last_reason = reason

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(
            **{
                **self.connect_args,
                "timeout": 5,
                # Nothing named is left on a server connection, even through a pooler by
                # mistake.
                "statement_cache_size": 0,
                "server_settings": {"application_name": "seats-access"},
            }
        )
        gone = asyncio.Event()
        wake = self._wake = asyncio.Event()

        def _gone(_: Any) -> None:
            gone.set()
            wake.set()

        conn.add_termination_listener(_gone)
        try:
            # Direct before LISTEN: through a transaction pooler the LISTEN would stay on a
            # server connection that other clients share, and PgBouncer drops that connection
            # at its first notification.
            await self._prove(conn, listens=False)
            await conn.add_listener(CHANNEL, self._notified)
            await self._prove(conn)
            # Listening from here: whatever changed before is flushed, as are reads in flight.
            self.cache.listening()
            if self.positions is not None:
                batch = self.positions.batch()
                self.positions.listening(batch, await self._position(conn))
            self.backend_pid = conn.get_server_pid()
            self.listening.set()
            LISTENING.set(1)
            if self._last_reason is not None:
                log.info("access cache serving again: the listener proved it listens")
                self._last_reason = None
            loop = asyncio.get_running_loop()
            ping_at = loop.time() + self.ping_seconds
            while not gone.is_set():
                wake.clear()
                # The ping first when due: a steady stream of notifications must not starve it.
                if loop.time() >= ping_at:
                    await self._prove(conn)
                    ping_at = loop.time() + self.ping_seconds
                    continue
                if self.positions is not None and self.positions.has_pending:
                    # One query for every notification that arrived before it is sent.
                    batch = self.positions.batch()
                    self.positions.positioned(batch, await self._position(conn))
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), ping_at - loop.time())
            raise ConnectionError("the listening connection was closed")
        finally:
            self._deaf()
            conn.terminate()

    async def _prove(self, conn: Any, *, listens: bool = True) -> None:
        """Raise ``NotListening`` unless ``conn``'s own backend answers (and, with
        ``listens``, listens on the channel)."""
        pid, listening = await conn.fetchrow(PROOF, CHANNEL, timeout=self.ping_seconds)
        if pid != conn.get_server_pid():
            raise NotListening(
                "not_direct",
                f"the ping ran on backend {pid}, not on the connection's own "
                f"{conn.get_server_pid()}: SEATS_DATABASE_LISTEN_URL must reach PostgreSQL "
                "directly, not through a pooler",
            )
        if listens and not listening:
            raise NotListening("not_listening", f"backend {pid} is not listening on {CHANNEL}")

    async def _position(self, conn: Any) -> int:
        return parse_lsn(await conn.fetchval(POSITION, timeout=self.ping_seconds))

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.cache.invalidate(payload)
        if self.positions is not None:
            self.positions.notified(payload)
            self._wake.set()
