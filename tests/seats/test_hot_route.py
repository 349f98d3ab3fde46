"""The agent check answered below FastAPI's router (app/fast/routes.py) answers exactly as
the FastAPI route it stands in front of: same status, headers and body, every error included,
and whatever it does not answer reaches FastAPI unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.fast.routes import TEMPLATE, FastRoutes
from app.main import create_app
from tests.conftest import Api, auth, service_token, user_token

AGENTS = "/v1/accounts/acme/conversations/agents"


@pytest.fixture
async def routed(settings: Settings) -> AsyncIterator[Api]:
    """The same app without the layer: every agent check goes through FastAPI's router."""
    application = create_app(settings)
    application.user_middleware = [
        m for m in application.user_middleware if m.cls is not FastRoutes
    ]
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(client)
    await application.state.gateway.aclose()
    await application.state.db.dispose()


@pytest.fixture
async def both(api: Api, routed: Api) -> tuple[Api, Api]:
    """acme on its trial with bob an agent; ``routed`` shares the database (already seeded)."""
    assert (await api.start_trial()).status_code == 201
    assert (await api.assign("bob")).status_code == 201
    # The comparison means something only if both apps read the one database.
    assert (await routed.summary())["status"] == "trialing"
    return api, routed


CASES: list[tuple[str, str, dict[str, str]]] = [
    ("an agent", f"{AGENTS}/bob", auth(user_token("acme", "carol"))),
    ("not an agent", f"{AGENTS}/alice", auth(user_token("acme", "carol"))),
    ("asked by a service", f"{AGENTS}/bob", auth(service_token())),
    ("no token", f"{AGENTS}/bob", {}),
    ("not a bearer token", f"{AGENTS}/bob", {"Authorization": "Basic YWxpY2U6eA=="}),
    ("a forged token", f"{AGENTS}/bob", auth(user_token("acme", "carol") + "x")),
    ("a user of no such account", f"{AGENTS}/bob", auth(user_token("acme", "mallory"))),
    ("another account's token", f"{AGENTS}/bob", auth(user_token("globex", "gina"))),
    ("no such user", f"{AGENTS}/nobody", auth(user_token("acme", "carol"))),
    (
        "no such account, asked by a service",
        "/v1/accounts/initech/conversations/agents/bob",
        auth(service_token()),
    ),
    ("an invalid user id", f"{AGENTS}/b%20b", auth(user_token("acme", "carol"))),
    ("an id too long", f"{AGENTS}/{'b' * 65}", auth(user_token("acme", "carol"))),
    ("a trailing slash", f"{AGENTS}/bob/", auth(user_token("acme", "carol"))),
    ("a query string", f"{AGENTS}/bob?x=1", auth(user_token("acme", "carol"))),
]


def comparable(r: httpx.Response) -> tuple[int, list[tuple[str, str]], Any]:
    headers = sorted((k, v) for k, v in r.headers.items() if k not in ("x-request-id", "date"))
    try:
        body = r.json()
    except ValueError:
        body = r.text
    if isinstance(body, dict):
        body.pop("request_id", None)
    return r.status_code, headers, body


@pytest.mark.parametrize(("case", "path", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_the_hot_route_answers_as_fastapi_does(
    both: tuple[Api, Api], case: str, path: str, headers: dict[str, str]
) -> None:
    fast, routed = both
    for method in ("GET", "HEAD", "POST"):
        a = await fast.client.request(method, path, headers=headers)
        b = await routed.client.request(method, path, headers=headers)
        assert comparable(a) == comparable(b), (case, method)
        assert a.headers["x-request-id"]


async def test_the_hot_route_answers_the_agent_check(both: tuple[Api, Api]) -> None:
    fast, _ = both
    r = await fast.call("GET", "acme", "/agents/bob", user="carol")
    assert r.status_code == 200
    assert r.content == b'{"user_id":"bob","agent":true,"active":true}'
    assert r.headers["content-type"] == "application/json"


def _count(text: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "seats_http_requests_total"
                and labels.items() <= sample.labels.items()
            ):
                return sample.value
    return 0.0


async def test_the_hot_route_is_counted_under_the_routes_template(
    both: tuple[Api, Api],
) -> None:
    fast, _ = both
    labels = {"method": "GET", "route": TEMPLATE}
    before = (await fast.client.get("/metrics")).text
    assert (await fast.call("GET", "acme", "/agents/bob", user="carol")).status_code == 200
    assert (await fast.call("GET", "acme", "/agents/nobody", user="carol")).status_code == 404
    after = (await fast.client.get("/metrics")).text
    for status in ("200", "404"):
        assert _count(after, **labels, status=status) - _count(before, **labels, status=status) == 1


ALICE, CAROL = auth(user_token("acme", "alice")), auth(user_token("acme", "carol"))
# Each step's answer depends on the steps before it: the same steps run on both apps, each
# starting with carol holding no seat and ending so.
WRITES: list[tuple[str, str, str, dict[str, str]]] = [
    ("a new agent", "PUT", f"{AGENTS}/carol", ALICE),
    ("already an agent", "PUT", f"{AGENTS}/carol", ALICE),
    ("asked by a user", "PUT", f"{AGENTS}/carol", CAROL),
    ("asked by a service", "PUT", f"{AGENTS}/carol", auth(service_token())),
    ("no token", "DELETE", f"{AGENTS}/carol", {}),
    ("another account's token", "DELETE", f"{AGENTS}/carol", auth(user_token("globex", "gina"))),
    ("freed", "DELETE", f"{AGENTS}/carol", ALICE),
    ("not an agent", "DELETE", f"{AGENTS}/carol", ALICE),
    ("no such user", "PUT", f"{AGENTS}/nobody", ALICE),
    ("no such account", "PUT", "/v1/accounts/initech/conversations/agents/bob", ALICE),
    ("an invalid user id", "PUT", f"{AGENTS}/b%20b", ALICE),
    ("a trailing slash", "DELETE", f"{AGENTS}/carol/", ALICE),
]


async def test_the_hot_route_answers_the_seat_writes_as_fastapi_does(
    both: tuple[Api, Api],
) -> None:
    fast, routed = both
    answers = {}
    for name, app in (("fast", fast), ("routed", routed)):
        answers[name] = [
            comparable(await app.client.request(method, path, headers=headers))
            for _, method, path, headers in WRITES
        ]
    for (case, *_), a, b in zip(WRITES, answers["fast"], answers["routed"], strict=True):
        assert a == b, case
    statuses = [a[0] for a in answers["fast"]]
    assert statuses == [201, 200, 403, 403, 401, 404, 204, 404, 404, 404, 422, 404]
