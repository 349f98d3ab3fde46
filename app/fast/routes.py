"""Measured: FastAPI's routing and dependency solving cost more than these requests' SQL.

The inbox asks ``GET /v1/accounts/{account_id}/conversations/agents/{user_id}`` on every page
load, and an admin assigns and frees seats with ``PUT`` and ``DELETE`` on the same path. Below
FastAPI's router, each costs its statements and little else; through it, routing over every
route, parameter analysis and validation, the dependency solving, the request object and the
response path cost more than the statements (docs/benchmarks.md).

This ASGI layer answers exactly those requests itself, and lets everything else through:

* only ``GET``, ``PUT`` and ``DELETE`` on a path whose two ids match the ids' pattern; any other
  request, or one whose ids would fail validation, goes on to FastAPI, which answers it as
  before (``422``...);
* each answer is one function (``check_agent``, ``assign_agent``, ``unassign_agent``) that the
  FastAPI route calls too: the same token verifier, service function, unit of work and bytes;
  on PostgreSQL the writes run in a driver transaction, with the same statements; the same
  problem+json for every error it raises (``problems.error_response``), and an
  unexpected error goes up to ``ServiceMiddleware`` as FastAPI's would; a write runs once more
  after a deadlock or serialization failure, as the router's route class does (app/retry.py);
* the FastAPI routes stay declared, for the OpenAPI and for the requests this layer passes on.
  tests/seats/test_hot_route.py compares the two.

It sits inside ``ServiceMiddleware`` (request id, metrics under the route's own template,
access log), CORS and, with standbys, ``ReadYourWrites``, like the router.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import ID_PATTERN, TokenVerifier
from app.clock import now_on
from app.db import Database
from app.errors import AppError
from app.problems import error_response, is_database_conflict
from app.seats import agents
from app.seats.schemas import AgentCheck

log = logging.getLogger(__name__)

# The versions this was measured and tested with (tests/test_fast_paths.py): it stands in for
# FastAPI's routing and relies on Starlette's scope (``route``, ``app``, ``root_path``).
LEANS_ON = {"fastapi": ("0.165", "0.166"), "starlette": ("1.10", "1.11")}

_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
_PATH = re.compile(rf"/v1/accounts/({_ID})/conversations/agents/({_ID})")
TEMPLATE = "/v1/accounts/{account_id}/conversations/agents/{user_id}"
JSON = "application/json"
_JSON = (b"content-type", JSON.encode())

# An answer: its status and its JSON body (None: no body).
Answer = tuple[int, bytes | None]
Handler = Callable[[State, str | None, str, str], Awaitable[Answer]]


class FastRoutes:
    """The agent check, assignment and unassignment, answered ahead of FastAPI's router."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[object]) -> None:
        self.app = app
        # Put in the scope as the router would: metrics are counted under its template.
        self.routes = {method: route_of(routes, method) for method in HANDLERS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] in HANDLERS and not scope.get("root_path"):
            match = _PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        scope["route"] = self.routes[method]
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        account_id, user_id = match.groups()
        try:
            args = (scope["app"].state, authorization, account_id, user_id)
            if method in WRITES:
                status, body = await once_more_on_conflict(HANDLERS[method], method, *args)
            else:
                status, body = await HANDLERS[method](*args)
        except AppError as exc:
            await error_response(exc)(scope, receive, send)
            return
        headers = [] if body is None else [(b"content-length", str(len(body)).encode()), _JSON]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body or b""})


async def check_agent(
    state: State, authorization: str | None, account_id: str, user_id: str
) -> Answer:
    """The agent check for the token of ``authorization``, from the app's verifier, database,
    clock and cache."""
    verifier: TokenVerifier = state.verifier
    principal = verifier.verify(authorization)
    check: AgentCheck = await agents.check_agent(
        state.db, state.clock, state.entitlements, principal, account_id, user_id
    )
    return 200, check.json_bytes()


async def assign_agent(
    state: State, authorization: str | None, account_id: str, user_id: str
) -> Answer:
    """R5 in one transaction: 201 and the new agent, 200 and the agent it already was. On
    PostgreSQL a driver transaction (``Database.driver_transaction``), unless R16 has more to
    write (``agents.assign_on``); then, as on SQLite, a session."""
    verifier: TokenVerifier = state.verifier
    principal = verifier.verify(authorization)
    db: Database = state.db
    if not db.is_sqlite:
        async with db.driver_transaction() as unit:
            now = await now_on(state.clock, unit)
            done = await agents.assign_on(unit, principal, account_id, user_id, now, state.settings)
        if done is not None:
            agent, created = done
            return (201 if created else 200), agent.model_dump_json().encode()
    async with db.transaction() as session:
        now = await state.clock.now(session)
        agent, created = await agents.assign(
            session, principal, account_id, user_id, now, state.settings
        )
    return (201 if created else 200), agent.model_dump_json().encode()


async def unassign_agent(
    state: State, authorization: str | None, account_id: str, user_id: str
) -> Answer:
    """R5 in one transaction: free the user's seat at once (204). On PostgreSQL a driver
    transaction (``Database.driver_transaction``), on SQLite a session."""
    verifier: TokenVerifier = state.verifier
    principal = verifier.verify(authorization)
    db: Database = state.db
    if not db.is_sqlite:
        async with db.driver_transaction() as unit:
            now = await now_on(state.clock, unit)
            await agents.unassign_on(unit, principal, account_id, user_id, now)
        return 204, None
    async with db.transaction() as session:
        now = await state.clock.now(session)
        await agents.unassign(session, principal, account_id, user_id, now)
    return 204, None


async def once_more_on_conflict(handler: Handler, method: str, *args: Any) -> Answer:
    """What ``app.retry.RetryOnConflictRoute`` does for the FastAPI routes of the writes: a
    transaction the database aborted to break a deadlock or a serialization conflict kept
    nothing, so it runs once more; a second conflict goes up (503 ``database_conflict``)."""
    try:
        return await handler(*args)
    except Exception as exc:
        if not is_database_conflict(exc):
            raise
        log.info("database conflict in %s %s; running it again", method, TEMPLATE)
    return await handler(*args)


HANDLERS: dict[str, Handler] = {
    "GET": check_agent,
    "PUT": assign_agent,
    "DELETE": unassign_agent,
}
# Run once more after a conflict here; behind the router, by its route class.
WRITES = frozenset({"PUT", "DELETE"})


def route_of(routes: Sequence[object], method: str) -> APIRoute:
    """The FastAPI route this layer answers ``method`` for (its template names the metrics)."""
    for route in routes:
        if (
            isinstance(route, APIRoute)
            and route.path == TEMPLATE
            and method in (route.methods or ())
        ):
            return route
    raise LookupError(f"no {method} {TEMPLATE} route")
