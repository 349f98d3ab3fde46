"""The WAL positions a standby must have replayed before it may answer for an account.

A read on a standby (SEATS_DATABASE_READ_URL) is never older than (a) a change whose
notification the worker has received, nor (b) a write this worker made for the account (read
your writes). Both are kept here as positions in PostgreSQL's WAL, per account:

* (a) The listener (app/entitlements.py) marks an account *pending* the moment its
  notification arrives, then reads ``pg_current_wal_insert_lsn()`` on the primary, one query per
  batch of notifications: a position at or after the commit of every change announced before
  that query ran (a position taken inside the trigger would be before the commit record). Until
  the position is known the account's reads go to the primary.
* (b) After a write request the service reads ``pg_current_wal_insert_lsn()`` once its transaction
  committed (app/read_positions.py) and records it for the account.

Until the listener proves it listens, nothing is known about what changed, so no standby may
answer (``UNREACHABLE``); when it listens, the position at that moment is the floor for every
account (changes before it went unannounced to this worker).

Pure bookkeeping: no I/O. One per worker process (one event loop): not thread-safe.
"""

from __future__ import annotations

# No standby ever replays this far: a read that needs it goes to the primary.
UNREACHABLE = 1 << 64
# The payload of a change every account depends on (the cache's EVERYTHING).
EVERYTHING = "*"


def parse_lsn(text: str) -> int:
    """PostgreSQL's ``pg_lsn`` text (``16/B374D848``) as a number that orders like it."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


class Positions:
    """Per account, the position a standby must have replayed to answer for it."""

    def __init__(self, *, max_accounts: int = 100_000) -> None:
        self.max_accounts = max_accounts
        self._floor = UNREACHABLE
        self._accounts: dict[str, int] = {}
        # Accounts notified whose position is not read yet, each with its notification's
        # sequence number; ``_floor_pending`` the same for a change to every account.
        self._pending: dict[str, int] = {}
        self._floor_pending: int | None = None
        self._seq = 0

    def needed(self, account_id: str) -> int:
        """The position a standby must have replayed to answer for the account."""
        if self._floor_pending is not None or account_id in self._pending:
            return UNREACHABLE
        return max(self._floor, self._accounts.get(account_id, 0))

    # The listener ----------------------------------------------------------------------

    def notified(self, account_id: str) -> None:
        """A change to the account was announced: its reads go to the primary until
        ``positioned`` covers it."""
        self._seq += 1
        if account_id == EVERYTHING:
            self._floor_pending = self._seq
        else:
            self._pending[account_id] = self._seq

    @property
    def has_pending(self) -> bool:
        return bool(self._pending) or self._floor_pending is not None

    def batch(self) -> int:
        """Taken just before the position query is sent: the notifications it covers."""
        return self._seq

    def positioned(self, batch: int, position: int) -> None:
        """``position`` (read on the primary after every notification up to ``batch`` arrived)
        is at or after their changes' commits. Later ones stay pending for the next query."""
        for account_id, seq in list(self._pending.items()):
            if seq <= batch:
                del self._pending[account_id]
                self._raise(account_id, position)
        if self._floor_pending is not None and self._floor_pending <= batch:
            self._floor_pending = None
            self._floor = max(self._floor, position)

    def listening(self, batch: int, position: int) -> None:
        """The listener listens, and ``position`` was read after it did (and after the
        notifications up to ``batch`` arrived): the floor of every account from now. Later
        notifications stay pending."""
        self._floor = position
        self._accounts.clear()
        self._pending = {a: seq for a, seq in self._pending.items() if seq > batch}
        if self._floor_pending is not None and self._floor_pending <= batch:
            self._floor_pending = None

    def deaf(self) -> None:
        """The listener stopped: changes may go unannounced, so no standby answers."""
        self._floor = UNREACHABLE
        self._accounts.clear()
        self._pending.clear()
        self._floor_pending = None

    # Read your writes ------------------------------------------------------------------

    def wrote(self, account_id: str, position: int) -> None:
        """This worker's write for the account committed at or before ``position``."""
        self._raise(account_id, position)

    def _raise(self, account_id: str, position: int) -> None:
        if position > self._accounts.get(account_id, 0):
            if len(self._accounts) >= self.max_accounts and account_id not in self._accounts:
                # Bounded: the highest position of all becomes everyone's floor (as safe, and
                # costs reads on the primary until the standbys pass it).
                self._floor = max(self._floor, *self._accounts.values())
                self._accounts.clear()
            self._accounts[account_id] = position
