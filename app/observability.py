"""Request ids, JSON logs and Prometheus metrics.

``ServiceMiddleware`` is plain ASGI (not ``BaseHTTPMiddleware``) and the only middleware of
ours: it sits on the hot path of every request, and it must also answer for exceptions so that
a 500 still carries ``X-Request-ID``.
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
AnswerWrapper = Callable[[ASGIApp], ASGIApp]

SLOW_SECONDS = 1.0
# Bounds the pre-bound metric children: route templates and statuses are few.
_MAX_BOUND_METRICS = 1024
# The method is the client's to choose (h11 passes any token): a label per made-up method
# would grow the registry, and every scrape, without bound. The others are one label.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "OTHER"


class ServiceMiddleware:
    """The one middleware of the service: the request id, the body-size limit, metrics and
    the access log, and the answer to an exception nobody handled (500, or 503).

    Plain ASGI, one layer: it sits on the hot path of every request. It is the
    outermost layer, so that every answer carries ``X-Request-ID`` (a CORS preflight too);
    the answers it makes itself (the 413 of a declared oversized body, the 500) go out
    through ``wrap_answer`` (CORS, when configured), like any answer from inside.

    The body limit is its own and not Starlette's ``max_body_size``: that one answers a
    plain-text 413 from outside the exception handlers (and outside CORS at the app level),
    and reads a body whose ``Content-Length`` is not a number as if it had none.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        on_error: ErrorResponder,
        too_large: Callable[[], ASGIApp],
        max_body_bytes: int,
        access_log_sample: float = 1.0,
        wrap_answer: AnswerWrapper | None = None,
    ) -> None:
        self.app = app
        self.on_error = on_error
        self.too_large = too_large
        self.max_body_bytes = max_body_bytes
        self.access_log_sample = access_log_sample
        self.wrap_answer: AnswerWrapper = wrap_answer or (lambda answer: answer)
        self._metrics: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, declared, has_body = None, None, False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                text = value.decode("latin-1")
                # A caller's id is echoed only when it is safe to put in logs and headers.
                request_id = text if _VALID_REQUEST_ID.match(text) else None
            elif name == b"content-length":
                has_body = True
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_body_bytes + 1  # unreadable: refused as too large
            elif name == b"transfer-encoding":
                has_body = True
        request_id = request_id or secrets.token_hex(16)
        token = _request_id.set(request_id)
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
            if declared is not None and declared > self.max_body_bytes:
                await self.wrap_answer(self.too_large())(scope, receive, send_wrapper)
                return
            if has_body:
                receive = self._limited(receive)
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception as exc:
                if response_started:
                    raise
                answer = self.too_large() if isinstance(exc, BodyTooLarge) else None
                answer = answer or await self.on_error(exc)
                await self.wrap_answer(answer)(scope, receive, send_wrapper)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            _request_id.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        return limited_receive

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        label = method if method in KNOWN_METHODS else OTHER_METHOD
        key = (label, template, status)
        children = self._metrics.get(key)
        if children is None:
            children = (
                REQUESTS.labels(label, template, str(status)),
                LATENCY.labels(label, template),
            )
            if len(self._metrics) < _MAX_BOUND_METRICS:
                self._metrics[key] = children
        children[0].inc()
        children[1].observe(elapsed)
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

    def _sampled(self, status: int, elapsed: float) -> bool:
        # A JSON line costs about as much as the hot read's query: under heavy traffic an
        # operator may keep a sample of the fast successes (metrics count them all).
        if status >= 400 or elapsed >= SLOW_SECONDS or self.access_log_sample >= 1:
            return True
        return random.random() < self.access_log_sample  # noqa: S311 - sampling, not secrets


class BodyTooLarge(HTTPException):
    """A body grew past the limit while being read.

    An HTTPException, so FastAPI passes it through its body parsing to the app's handler
    (413 problem+json) instead of turning it into a generic 400.
    """

    def __init__(self) -> None:
        super().__init__(status_code=413)
