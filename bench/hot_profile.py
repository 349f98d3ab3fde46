"""In-process cost of the hot read, layer by layer (docs/benchmarks.md).

    scripts/with-postgres .venv/bin/python bench/hot_profile.py [--requests 4000]

One process, one request at a time, the token already verified (cached): CPU microseconds per
request (``time.process_time``) of, from the inside out, the repository's statement alone, the
endpoint's service call, FastAPI's router without any middleware (the route the check's own
one stands in front of), and the whole app as it serves (middleware and the check's own route,
app/fast/routes.py); then the same with the answer in the worker's cache (its listener
started, app/entitlements.py), where no statement is sent. The differences are what each
layer costs. No HTTP server and no socket: what is left is the Python a worker runs per
request, plus the database round trip's client side. Access log on (level INFO, to /dev/null)
as a real worker runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from app.auth import TokenVerifier
from app.cli import migrate
from app.main import create_app
from app.seats import agents
from tests.conftest import Api, make_settings, user_token

ACCOUNT, CALLER, TARGET = "acme", "carol", "bob"
PATH = f"/v1/accounts/{ACCOUNT}/conversations/agents/{TARGET}"


def scope_for(token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


async def asgi_call(app: Any, scope: dict[str, Any], *, bare: bool = False) -> int:
    """One request through ``app``; ``bare``: the router alone, given what FastAPI's own
    outermost layers would have put in the scope."""
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    if not bare:
        await app(dict(scope), receive, send)
        return status
    async with AsyncExitStack() as stack:
        await app.router({**scope, "app": app, "fastapi_middleware_astack": stack}, receive, send)
    return status


async def calls(fn: Callable[[], Awaitable[object]], n: int = 200) -> float:
    """Python function calls per request: a count, so the same on a busy machine."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n):
        await fn()
    profile.disable()
    return sum(stat.callcount for stat in profile.getstats()) / n


async def cost(name: str, n: int, fn: Callable[[], Awaitable[object]]) -> float:
    for _ in range(200):  # warm: statement caches, pool, token cache
        await fn()
    count = await calls(fn)
    runs = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(n):
            await fn()
        runs.append((time.process_time() - started) / n * 1e6)
    best = min(runs)
    print(
        f"  {name:44} {best:7.0f} us  {count:6.0f} calls  "
        f"(runs: {', '.join(f'{r:.0f}' for r in runs)})"
    )
    return best


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    url = os.environ["TEST_DATABASE_URL"]
    settings = make_settings(url, log_level="INFO", test_clock=False)
    await asyncio.to_thread(migrate, settings)
    app = create_app(settings)
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:
            api = Api(client)
            assert (await api.put_account(ACCOUNT)).status_code == 201
            for user, role in (("alice", "primary_admin"), ("bob", "admin"), ("carol", "user")):
                assert (await api.put_user(ACCOUNT, user, role)).status_code == 201
            assert (await api.start_trial()).status_code == 201
            assert (await api.assign(TARGET)).status_code == 201
        token = user_token(ACCOUNT, CALLER)
        scope = scope_for(token)
        assert await asgi_call(app, scope) == 200
        verifier: TokenVerifier = app.state.verifier
        principal = verifier.verify(f"Bearer {token}")
        db, clock, cache = app.state.db, app.state.clock, app.state.entitlements
        n = args.requests

        async def layers(statement: bool) -> dict[str, float]:
            out = {"repository statement": 0.0}
            if statement:
                out["repository statement"] = await cost(
                    "repository statement (agent_check)",
                    n,
                    lambda: agents.repository.agent_check(
                        db, ACCOUNT, CALLER, TARGET, stored_clock=False
                    ),
                )
            out["service"] = await cost(
                "service.check_agent (+ rules, clock)",
                n,
                lambda: agents.check_agent(db, clock, cache, principal, ACCOUNT, TARGET),
            )
            out["router"] = await cost(
                "FastAPI's router alone (its own route)",
                n,
                lambda: asgi_call(app, scope, bare=True),
            )
            out["app"] = await cost(
                "whole app (middleware, the check's own route)", n, lambda: asgi_call(app, scope)
            )
            return out

        print(f"hot read, in-process, PostgreSQL, {n} requests x 3 (best), CPU per request:")
        print_layers(await layers(statement=True), "statement, pool checkout and return")
        listener = app.state.access_listener
        listener.start()
        await asyncio.wait_for(listener.listening.wait(), 10)
        print("the same, the answer in the worker's cache (no statement):")
        cached = await layers(statement=False)
        assert len(cache) == 1, "the answer was not cached"
        print_layers(cached, "statement (none: cached)")
        await listener.stop()
    finally:
        await app.state.gateway.aclose()
        await app.state.db.dispose()


def print_layers(layers: dict[str, float], statement: str) -> None:
    """The request's cost split: the statement, the service around it, and the rest of the
    request either through FastAPI's router or through the check's own route."""
    print("per layer:")
    service_only = layers["service"] - layers["repository statement"]
    print(f"  {statement:50} {layers['repository statement']:7.0f} us")
    print(f"  {'service: authorize, rules, answer':50} {service_only:7.0f} us")
    for name, label in (
        ("router", "FastAPI: routing, dependencies, response"),
        ("app", "own route and middleware (what a request pays)"),
    ):
        print(f"  {label:50} {layers[name] - layers['service']:7.0f} us")
    print(f"  {'total, as served':50} {layers['app']:7.0f} us")


if __name__ == "__main__":
    asyncio.run(main())
