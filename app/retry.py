"""Run a request again, once, when the database aborted it to break a conflict (SPEC §7).

PostgreSQL breaks a deadlock (SQLSTATE 40P01) or a serialization conflict (40001) by aborting
one of the transactions; the other goes on, so the aborted one usually succeeds when it simply
runs again. ``RetryOnConflictRoute`` does that for a whole endpoint, dependencies included:
each attempt solves them afresh (a new session) and closes its function-scoped ones itself,
so a conflict raised by the session dependency's commit is retried too. A second conflict in
a row propagates, and the one error handler answers ``503 database_conflict`` with
``Retry-After`` (``app.errors``), never ``500``.

Only errors that abort the whole transaction qualify, so nothing of the first attempt was
kept; the work an endpoint commits in transactions of its own (an idempotency claim, a pending
purchase) is written to be continued by a retry with the same key, which this is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.problems import is_database_conflict

log = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# Where FastAPI keeps the exit stack of the ``scope="function"`` dependencies of a request
# (fastapi.routing.request_response). It closes that stack only after the handler returned,
# outside of any wrapper of the handler; each attempt installs its own stack instead.
_FUNCTION_STACK = "fastapi_function_astack"


class RetryOnConflictRoute(APIRoute):
    """An APIRoute whose endpoint runs once more after a deadlock or serialization failure."""

    def get_route_handler(self) -> Handler:
        """The endpoint's handler, wrapped in one retry on a database conflict."""
        handler = super().get_route_handler()

        async def retrying(request: Request) -> Response:
            try:
                return await _attempt(handler, request)
            except Exception as exc:
                if not is_database_conflict(exc):
                    raise
                log.info("database conflict in %s %s; running it again", request.method, self.path)
            return await _attempt(handler, request)

        return retrying


async def _attempt(handler: Handler, request: Request) -> Response:
    """One run of the handler whose function-scoped dependencies close before it returns."""
    scope = request.scope
    outer = scope.get(_FUNCTION_STACK)
    try:
        async with AsyncExitStack() as stack:
            scope[_FUNCTION_STACK] = stack
            return await handler(request)
    finally:
        if outer is None:
            scope.pop(_FUNCTION_STACK, None)
        else:
            scope[_FUNCTION_STACK] = outer
