"""Request ids, JSON logs and Prometheus metrics.

The middleware is plain ASGI (not ``BaseHTTPMiddleware``): it sits on the hot path of every
request, and it must also answer for exceptions so that a 500 still carries ``X-Request-ID``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

REQUESTS = Counter("seats_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "seats_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CHARGES = Counter("seats_charges_total", "Gateway charge attempts by outcome", ["outcome"])


def current_request_id() -> str | None:
    return _request_id.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = _request_id.get()
        if request_id:
            entry["request_id"] = request_id
        for key in ("method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log would duplicate ours, without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


access_log = logging.getLogger("app.access")

ErrorResponder = Callable[[Exception], Awaitable[ASGIApp]]


class RequestContextMiddleware:
    """Sets ``X-Request-ID``, records metrics and the access log, answers unhandled errors."""

    def __init__(
        self, app: ASGIApp, on_error: ErrorResponder, access_log_sample: float = 1.0
    ) -> None:
        self.app = app
        self.on_error = on_error
        self.access_log_sample = access_log_sample

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or secrets.token_hex(16)
        token = _request_id.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False
        header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if response_started:
                raise
            response = await self.on_error(exc)
            await response(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO) and self._sampled(status, elapsed):
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            _request_id.reset(token)

    def _sampled(self, status: int, elapsed: float) -> bool:
        # A JSON line costs about as much as the hot read's query: under heavy traffic an
        # operator may keep a sample of the fast successes (metrics count them all).
        if status >= 400 or elapsed >= SLOW_SECONDS or self.access_log_sample >= 1:
            return True
        return random.random() < self.access_log_sample  # noqa: S311 - sampling, not secrets


SLOW_SECONDS = 1.0


class UnhandledErrorMiddleware:
    """Answers an exception nobody handled with ``on_error``'s problem (500, or 503).

    It sits inside CORS, so that this answer carries the CORS headers like any other;
    ``RequestContextMiddleware`` keeps the same answer as a last resort outside it.
    """

    def __init__(self, app: ASGIApp, on_error: ErrorResponder) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if response_started:
                raise
            response = await self.on_error(exc)
            await response(scope, receive, send)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            # A caller's id is echoed only when it is safe to put in logs and headers.
            return text if _VALID_REQUEST_ID.match(text) else None
    return None


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413 before the app reads them into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int, too_large: Callable[[], ASGIApp]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await self.too_large()(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await self.too_large()(scope, receive, send)


class BodyTooLarge(HTTPException):
    """A chunked body grew past the limit while being read.

    An HTTPException, so FastAPI passes it through its body parsing instead of turning it
    into a generic 400.
    """

    def __init__(self) -> None:
        super().__init__(status_code=413)
