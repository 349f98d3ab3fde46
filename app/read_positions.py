"""Read your writes with standbys (SEATS_DATABASE_READ_URL): a caller's own change is visible
to its next read, whichever worker or instance serves it.

After every write request for an account (any method but GET, HEAD and OPTIONS, on a path
naming ``/accounts/{id}``) whose answer is not a 5xx, the service reads the primary's insert
position, which is past the commit of the request's transaction (committed before the answer
starts: app/deps.py), and:

* records it for the account in the worker (``Positions.wrote``): the worker's later reads of
  the account, anyone's, wait for it;
* sends it back as the ``Seats-Read-Position`` header and the ``seats_read_position`` cookie.
  A read that carries either (the Manage Seats page's browser sends the cookie by itself) is
  answered by a standby only once the standby has replayed that far: the same caller's next
  read on another worker or another instance sees its change too.

A client that keeps neither gets its writes back on the same worker, and on any worker once
the change's notification arrived (changes to access notify); other reads may trail by the
standby's lag. When the position cannot be read (the primary went away just after the commit),
the account's reads stay on the primary until the listener listens again.
"""

from __future__ import annotations

import logging
import re
from http.cookies import SimpleCookie

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import Database
from app.positions import UNREACHABLE, format_lsn, parse_lsn

log = logging.getLogger(__name__)

HEADER = "Seats-Read-Position"
COOKIE = "seats_read_position"
# Long enough for any lag an operator would tolerate; a standby further behind than this may
# show a cookie-less caller its write late, as it would a caller without the cookie.
COOKIE_SECONDS = 300

_ACCOUNT = re.compile(r"/accounts/([^/]+)")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_LSN = re.compile(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}")


def account_of(path: str) -> str | None:
    found = _ACCOUNT.search(path)
    return found.group(1) if found else None


def written_account(method: str, path: str) -> str | None:
    """The account a request writes, whose answer carries the position; None for a read."""
    return account_of(path) if method not in _READS else None


def asked_position(header: str | None, cookie_header: str | None) -> int:
    """The position a read must see: the highest of the header's and the cookie's. A value
    that is not a position asks for the primary."""
    values = [header] if header else []
    if cookie_header:
        cookie = SimpleCookie()
        try:
            cookie.load(cookie_header)
        except Exception:
            cookie = SimpleCookie()
        if COOKIE in cookie:
            values.append(cookie[COOKIE].value)
    position = 0
    for value in values:
        if not _LSN.fullmatch(value.strip()):
            return UNREACHABLE
        position = max(position, parse_lsn(value.strip()))
    return position


class ReadYourWrites:
    """ASGI middleware: after a write request for an account, record and send the position
    (see the module's docstring). Installed only with standbys."""

    def __init__(self, app: ASGIApp, *, db: Database) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        account_id = (
            written_account(scope["method"], scope["path"]) if scope["type"] == "http" else None
        )
        if account_id is None:
            await self.app(scope, receive, send)
            return

        async def send_position(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 500:
                position = await self._wrote(account_id)
                if position is not None:
                    lsn = format_lsn(position)
                    message["headers"] = [
                        *message.get("headers", []),
                        (HEADER.lower().encode(), lsn.encode()),
                        (
                            b"set-cookie",
                            f"{COOKIE}={lsn}; Path=/; Max-Age={COOKIE_SECONDS}; HttpOnly; "
                            "SameSite=Strict".encode(),
                        ),
                    ]
            await send(message)

        await self.app(scope, receive, send_position)

    async def _wrote(self, account_id: str) -> int | None:
        try:
            return await self.db.wrote(account_id)
        except Exception as exc:
            log.warning(
                "no position after a write for %s (%s): its reads stay on the primary",
                account_id,
                type(exc).__name__,
            )
            self.db.positions.wrote(account_id, UNREACHABLE)
            return None
