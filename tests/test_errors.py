"""One error shape for everything: RFC 9457 problem+json with a stable ``code`` (SPEC §4)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import DBAPIError

from app.config import Settings
from app.main import create_app
from app.observability import JsonFormatter
from app.problems import unexpected_error_response
from tests.conftest import Api, problem

SUMMARY = "/v1/accounts/acme/conversations"
MAX_BODY = 64 * 1024


def full_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``problem`` plus the fields every problem carries here: type URI and request id."""
    body = problem(response, status, code)
    assert body["type"].endswith(f"/problems/{code}"), body
    assert re.match(r"^https?://", body["type"]), body
    assert body["request_id"], body
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# --- the shape, status by status ------------------------------------------------------------


async def test_401_is_a_problem(api: Api) -> None:
    r = await api.client.get(SUMMARY)
    full_problem(r, 401, "unauthenticated")


async def test_403_is_a_problem(api: Api) -> None:
    r = await api.start_trial(user="bob")
    body = full_problem(r, 403, "not_primary_admin")
    assert body["title"] != body["code"]


async def test_404_unknown_route_is_a_problem(api: Api) -> None:
    for path in ("/nope", "/v1/accounts/acme/conversations/nope", "/v2/accounts/acme"):
        r = await api.client.get(path, headers=api.as_service())
        full_problem(r, 404, "not_found")
    # unknown routes answer the same without a token
    full_problem(await api.client.get("/nope"), 404, "not_found")


async def test_405_wrong_method_is_a_problem_with_allow(api: Api) -> None:
    cases = [
        ("PATCH", SUMMARY, {"GET"}),
        ("POST", SUMMARY, {"GET"}),
        ("DELETE", f"{SUMMARY}/trial", {"POST"}),
        ("GET", f"{SUMMARY}/purchases", {"POST"}),
        ("PATCH", f"{SUMMARY}/agents/carol", {"GET", "PUT", "DELETE"}),
        ("POST", "/internal/v1/accounts/acme/users/carol", {"PUT", "DELETE"}),
        ("POST", "/healthz", {"GET"}),
    ]
    for method, path, allowed in cases:
        r = await api.client.request(method, path, headers=api.as_service())
        assert r.status_code == 405, (method, path, r.text)
        full_problem(r, 405, "method_not_allowed")
        listed = {m.strip() for m in r.headers["allow"].split(",")}
        # every method the resource supports is listed (RFC 9110), and no other
        assert listed - {"HEAD"} == allowed, (method, path, r.headers["allow"])


async def test_422_lists_the_failing_fields(api: Api) -> None:
    r = await api.call(
        "POST", "acme", "/quotes", user="alice", json={"seats": -1, "colour": "blue"}
    )
    body = full_problem(r, 422, "validation_error")
    locs = [tuple(error["loc"]) for error in body["errors"]]
    assert ("body", "seats") in locs
    assert ("body", "colour") in locs
    for error in body["errors"]:
        assert set(error) == {"loc", "msg", "type"}
        assert all(isinstance(part, str) for part in error["loc"])
    assert "seats" in body["detail"]


async def test_422_query_parameters(api: Api) -> None:
    for query in ("limit=0", "limit=101", "limit=ten"):
        r = await api.client.get(f"{SUMMARY}/agents?{query}", headers=api.as_service())
        body = full_problem(r, 422, "validation_error")
        assert [e["loc"] for e in body["errors"]] == [["query", "limit"]]


async def test_422_does_not_echo_the_input(api: Api) -> None:
    secret = "s3cr3t-" + "z" * 200
    r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": secret})
    full_problem(r, 422, "validation_error")
    assert secret not in r.text


# --- 413: bodies over SEATS_MAX_BODY_BYTES --------------------------------------------------


def _oversized_json() -> bytes:
    return b'{"seats": 5, "pad": "' + b"x" * MAX_BODY + b'"}'


async def test_413_body_over_the_limit_with_content_length(api: Api) -> None:
    content = _oversized_json()
    r = await api.client.post(
        f"{SUMMARY}/quotes",
        content=content,
        headers={**api.as_user("acme", "alice"), "Content-Type": "application/json"},
    )
    assert r.request.headers["content-length"] == str(len(content))
    full_problem(r, 413, "payload_too_large")


async def test_413_chunked_body_without_content_length(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"seats": 5, "pad": "'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    r = await api.client.post(
        f"{SUMMARY}/purchases",
        content=chunks(),
        headers={
            **api.as_user("acme", "alice"),
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )
    assert "content-length" not in r.request.headers
    full_problem(r, 413, "payload_too_large")
    # nothing was bought
    assert (await api.summary())["status"] == "none"


async def test_a_body_at_the_limit_is_read(api: Api) -> None:
    """Just under the limit the body reaches validation (422, not 413)."""
    pad = "x" * (MAX_BODY - 100)
    r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 5, "pad": pad})
    assert len(r.request.content) <= MAX_BODY
    body = full_problem(r, 422, "validation_error")
    assert [e["loc"] for e in body["errors"]] == [["body", "pad"]]


async def test_a_chunked_body_under_the_limit_is_read(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"seats": '
        yield b"25}"

    r = await api.client.post(
        f"{SUMMARY}/quotes",
        content=chunks(),
        headers={**api.as_user("acme", "alice"), "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["seats"] == 25


async def test_413_lying_content_length(api: Api) -> None:
    r = await api.client.post(
        f"{SUMMARY}/quotes",
        content=b'{"seats": 5}',
        headers={**api.as_user("acme", "alice"), "Content-Length": "not-a-number"},
    )
    assert r.status_code in (400, 413), r.text
    assert r.headers["content-type"].startswith("application/problem+json")


# --- 500: an unexpected exception -----------------------------------------------------------


@pytest.fixture
async def boom_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)

    async def boom() -> dict[str, str]:
        raise RuntimeError("kaboom: secret internals at /srv/app.py line 42")

    application.add_api_route("/boom", boom)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await application.state.gateway.aclose()
        await application.state.db.dispose()


async def test_500_is_internal_error_without_a_traceback(
    boom_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    r = await boom_client.get("/boom", headers={"X-Request-ID": "trace-me-500"})
    body = full_problem(r, 500, "internal_error")
    assert body["request_id"] == "trace-me-500"
    assert r.headers["x-request-id"] == "trace-me-500"
    for leak in ("Traceback", "RuntimeError", "kaboom", "secret internals", 'File "'):
        assert leak not in r.text
    # the operator finds it in the log by the request id
    assert any(rec.exc_info and rec.levelname == "ERROR" for rec in caplog.records)


async def test_500_generates_a_request_id(boom_client: httpx.AsyncClient) -> None:
    r = await boom_client.get("/boom")
    body = full_problem(r, 500, "internal_error")
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    # the app keeps serving
    assert (await boom_client.get("/healthz")).status_code == 200


@pytest.fixture
def access_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The access log's JSON lines so far, each formatted while its request was served (so
    with its request id)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("app.access")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return 0.0


async def test_every_answer_is_logged_and_counted_once(
    boom_client: httpx.AsyncClient, access_log: Callable[[], list[dict[str, Any]]]
) -> None:
    """One access line and one count per request, with its request id: the 500 of an
    unexpected error and the 413 of an oversized body included."""
    metrics = "seats_http_requests_total"
    boom = {"method": "GET", "route": "/boom", "status": "500"}
    too_big = {"method": "POST", "route": "unmatched", "status": "413"}
    text = (await boom_client.get("/metrics")).text
    before = _metric(text, metrics, **boom), _metric(text, metrics, **too_big)
    r = await boom_client.get("/boom", headers={"X-Request-ID": "trace-500"})
    full_problem(r, 500, "internal_error")
    # declared too large: refused before routing, so counted under no route
    big = await boom_client.post(f"{SUMMARY}/quotes", content=b"x" * (MAX_BODY + 1))
    full_problem(big, 413, "payload_too_large")
    health = await boom_client.get("/healthz")
    text = (await boom_client.get("/metrics")).text
    after = _metric(text, metrics, **boom), _metric(text, metrics, **too_big)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    lines = access_log()
    by_id = {line["request_id"]: line for line in lines}
    assert len(by_id) == len(lines) == 5  # the two /metrics reads too
    assert (by_id["trace-500"]["status"], by_id["trace-500"]["path"]) == (500, "/boom")
    assert by_id[big.headers["x-request-id"]]["status"] == 413
    assert by_id[health.headers["x-request-id"]]["status"] == 200
    for line in lines:
        assert line["msg"] == "request" and line["method"] in ("GET", "POST")
        assert line["duration_ms"] >= 0


async def test_a_declared_oversized_body_is_413_on_any_route(api: Api) -> None:
    """The limit is the middleware's: a GET (the hot read) with a body over it is refused
    too, and so is a Content-Length that is not a number."""
    path = api.url("acme", "/agents/carol")
    headers = api.as_user("acme", "carol")
    r = await api.client.request("GET", path, content=b"x" * (MAX_BODY + 1), headers=headers)
    full_problem(r, 413, "payload_too_large")
    r = await api.client.get(path, headers={**headers, "Content-Length": "lots"})
    full_problem(r, 413, "payload_too_large")
    assert (await api.client.get(path, headers=headers)).status_code == 200


# --- X-Request-ID ---------------------------------------------------------------------------


async def test_safe_request_id_is_echoed(api: Api) -> None:
    for request_id in ("abc-123", "req_01HXYZ.7:a", "a", "x" * 128, str(uuid.uuid4())):
        r = await api.client.get("/healthz", headers={"X-Request-ID": request_id})
        assert r.headers["x-request-id"] == request_id
        r = await api.client.get(SUMMARY, headers={"X-Request-ID": request_id})
        assert full_problem(r, 401, "unauthenticated")["request_id"] == request_id


async def test_request_id_is_generated_when_absent(api: Api) -> None:
    first = await api.client.get("/healthz")
    second = await api.client.get("/healthz")
    for r in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    # every response carries one, successes included
    r = await api.call("GET", "acme")
    assert r.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


async def test_unsafe_request_id_is_replaced(api: Api) -> None:
    unsafe_ids = ["has spaces", "x" * 129, "", "semi;colon", "new\\nline", "<script>", "ünïcode"]
    for unsafe in unsafe_ids:
        r = await api.client.get(SUMMARY, headers=[(b"X-Request-ID", unsafe.encode("utf-8"))])
        generated = r.headers["x-request-id"]
        assert generated != unsafe
        assert re.fullmatch(r"[0-9a-f]{32}", generated), (unsafe, generated)
        assert full_problem(r, 401, "unauthenticated")["request_id"] == generated


# --- bodies that are not what the endpoint takes --------------------------------------------


async def test_malformed_json_body_is_validation_error(api: Api) -> None:
    bodies = [b'{"seats": ', b"{seats: 5}", b"not json", b"", b"\xff\xfe", b"[5]", b"5", b"null"]
    for content in bodies:
        r = await api.client.post(
            f"{SUMMARY}/quotes",
            content=content,
            headers={**api.as_user("acme", "alice"), "Content-Type": "application/json"},
        )
        assert r.status_code == 422, (content, r.text)
        full_problem(r, 422, "validation_error")


async def test_body_without_json_content_type_is_refused(api: Api) -> None:
    r = await api.client.post(
        f"{SUMMARY}/quotes",
        content=b"seats=5",
        headers={
            **api.as_user("acme", "alice"),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert r.status_code in (415, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")


SEAT_ENDPOINTS = ["/quotes", "/purchases", "/removals"]


async def _seats_refused(api: Api, values: list[Any]) -> None:
    for path in SEAT_ENDPOINTS:
        for seats in values:
            key = uuid.uuid4().hex
            r = await api.call("POST", "acme", path, user="alice", json={"seats": seats}, key=key)
            assert r.status_code == 422, (path, seats, r.text)
            body = full_problem(r, 422, "validation_error")
            assert [e["loc"] for e in body["errors"]] == [["body", "seats"]], (path, seats)


async def test_seats_must_be_a_json_integer(api: Api) -> None:
    await _seats_refused(api, [1.5, 5.0001, "5", "five", True, False, None, [5], {"n": 5}, 1e9])
    assert (await api.summary())["status"] == "none"


async def test_seats_out_of_bounds_is_validation_error(api: Api) -> None:
    await _seats_refused(api, [-1, -(2**63), 1_000_000_001, 2**63, 10**30])
    assert (await api.summary())["status"] == "none"


async def test_missing_seats_is_validation_error(api: Api) -> None:
    r = await api.call("POST", "acme", "/quotes", user="alice", json={})
    body = full_problem(r, 422, "validation_error")
    assert [e["loc"] for e in body["errors"]] == [["body", "seats"]]


async def test_the_upper_bound_itself_is_accepted(api: Api) -> None:
    r = await api.call("POST", "acme", "/quotes", user="alice", json={"seats": 1_000_000_000})
    assert r.status_code == 201, r.text
    quote = r.json()
    assert quote["seats"] == 1_000_000_000
    assert isinstance(quote["due_now"], int)
    assert quote["cycle_total"] == 1_000_000_000 * quote["unit_price"]


def _wrapped(driver_error: Exception) -> Exception:
    """``driver_error`` as SQLAlchemy's asyncpg adapter raises it: its own error, the driver's
    kept as the cause, inside a DBAPIError."""
    try:
        try:
            raise driver_error
        except Exception as exc:
            raise RuntimeError(str(exc)) from exc
    except RuntimeError as adapted:
        return DBAPIError("SELECT 1", None, adapted)


@pytest.mark.parametrize(
    ("driver_error", "status"),
    [
        # A backend terminated while idle: the next statement finds its last error still being
        # consumed. The connection is gone, as surely as with "connection is closed".
        (
            asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            ),
            503,
        ),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), 503),
        (ValueError("a bug of ours"), 500),
    ],
)
async def test_a_lost_driver_connection_is_503_however_it_is_wrapped(
    driver_error: Exception, status: int
) -> None:
    response = await unexpected_error_response(_wrapped(driver_error))
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert body["code"] == ("service_unavailable" if status == 503 else "internal_error")


@pytest.mark.parametrize(
    "driver_error",
    [
        asyncpg.TooManyConnectionsError('too many connections for role "seats_app"'),
        asyncpg.ProtocolViolationError("no more connections allowed (max_client_conn)"),
        asyncpg.InvalidSQLStatementNameError(
            'prepared statement "__asyncpg_stmt_1__" does not exist'
        ),
        asyncpg.DuplicatePreparedStatementError(
            'prepared statement "__asyncpg_stmt_1__" already exists'
        ),
        asyncpg.OutOfMemoryError("out of memory"),
    ],
    ids=["53300", "08P01", "26000", "42P05", "53200"],
)
async def test_out_of_connections_is_503_with_retry_after_at_connect_and_mid_request(
    driver_error: Exception,
) -> None:
    """Mid-request the driver's error comes inside a DBAPIError; when the pool fails to open a
    connection for the agent check's raw read, inside the asyncpg adapter's own error alone."""
    try:
        raise RuntimeError(str(driver_error)) from driver_error
    except RuntimeError as adapted:
        at_connect: Exception = adapted
    for error in (_wrapped(driver_error), at_connect):
        response = await unexpected_error_response(error)
        assert response.status_code == 503
        assert json.loads(bytes(response.body))["code"] == "service_unavailable"
        assert int(response.headers["retry-after"]) >= 1
