"""The agent check, answered below FastAPI's router (issue 13).

The inbox asks ``GET /v1/accounts/{account_id}/conversations/agents/{user_id}`` on every page
load. Once its answer comes from the worker's cache (app/entitlements.py), FastAPI's own
handling is most of what a request costs: routing through every route, the dependency
solving, the request object, the response class and the exception middleware (about 1,000 of
the 1,150 Python calls per request; BENCHMARKS.md "Hot read profile").

This ASGI layer answers exactly that request itself, and lets everything else through:

* only ``GET`` on a path whose two ids match the ids' pattern; any other request, or one whose
  ids would fail validation, goes on to FastAPI, which answers it as before (``422``...);
* the same token verifier and service function (``answer``, which the FastAPI route calls
  too; ``service.check_agent``: scope, authorization, rules, cache), the same problem+json
  for every error it raises
  (``problems.error_response``), and an unexpected error goes up to ``ServiceMiddleware`` as
  FastAPI's would;
* the same bytes and headers as the FastAPI route, which stays declared for the OpenAPI and
  for the requests this layer passes on. tests/seats/test_hot_route.py compares the two.

It sits inside ``ServiceMiddleware`` (request id, metrics under the route's own template,
access log) and CORS, like the router.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi.routing import APIRoute
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import ID_PATTERN, TokenVerifier
from app.errors import AppError
from app.problems import error_response
from app.seats import service
from app.seats.schemas import AgentCheck

_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
_PATH = re.compile(rf"/v1/accounts/({_ID})/conversations/agents/({_ID})")
TEMPLATE = "/v1/accounts/{account_id}/conversations/agents/{user_id}"
_JSON = (b"content-type", b"application/json")


class AgentCheckRoute:
    def __init__(self, app: ASGIApp, *, route: APIRoute) -> None:
        self.app = app
        # Put in the scope as the router would: metrics are counted under its template.
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            match = _PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        account_id, user_id = match.groups()
        try:
            check = await answer(scope["app"].state, authorization, account_id, user_id)
        except AppError as exc:
            await error_response(exc)(scope, receive, send)
            return
        body = check.json_bytes()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), _JSON],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def answer(
    state: State, authorization: str | None, account_id: str, user_id: str
) -> AgentCheck:
    """The agent check for the token of ``authorization``: what this layer and the FastAPI
    route behind it both answer, from the app's verifier, database, clock and cache."""
    verifier: TokenVerifier = state.verifier
    principal = verifier.verify(authorization)
    return await service.check_agent(
        state.db, state.clock, state.entitlements, principal, account_id, user_id
    )


def agent_check_route(routes: Sequence[object]) -> APIRoute:
    """The FastAPI route this layer answers for (its template names the metrics)."""
    for route in routes:
        if (
            isinstance(route, APIRoute)
            and route.path == TEMPLATE
            and "GET" in (route.methods or ())
        ):
            return route
    raise LookupError(f"no GET {TEMPLATE} route")
