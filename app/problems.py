"""The one mapping of errors to RFC 9457 problem+json (SPEC §4).

``install_error_handlers`` turns ``AppError`` subclasses, FastAPI's validation errors, unknown
routes, wrong methods and unexpected exceptions into ``application/problem+json`` with a stable
machine-readable ``code``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.db import DRIVER_CONNECTION_LOST
from app.errors import (
    PROBLEM_JSON,
    AppError,
    DatabaseConflict,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
)
from app.observability import current_request_id

log = logging.getLogger("app.errors")


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://seats.conversations/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": current_request_id(),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def error_response(exc: AppError) -> JSONResponse:
    return problem_response(
        exc.status, exc.code, exc.title, exc.detail, dict(exc.headers) or None, **exc.extra
    )


def _jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        # ``input`` may hold the whole (possibly huge or binary) body: keep the location only.
        out.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _jsonable_errors(exc)
    fields = ", ".join(".".join(e["loc"]) for e in errors[:5])
    return problem_response(
        422,
        ValidationFailed.code,
        ValidationFailed.title,
        f"Invalid request: {fields}" if fields else "Invalid request",
        errors=errors,
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (RFC 9110: Allow lists them all).

    Starlette's own Allow header names only the first route whose path matched.
    """
    allowed = []
    for method in _METHODS:
        probe = {key: request.scope.get(key) for key in ("type", "path", "root_path", "headers")}
        probe["method"] = method
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(NotFound("No such resource"))
    if exc.status_code == 413:
        return error_response(PayloadTooLarge())
    if exc.status_code == 405:
        response = error_response(MethodNotAllowed())
        if exc.headers and "allow" in {k.lower() for k in exc.headers}:
            response.headers.update(exc.headers)
        if allowed := _allowed_methods(request):
            response.headers["Allow"] = ", ".join(allowed)
        return response
    if exc.status_code == 400:
        # FastAPI's answer to a body it could not parse at all (invalid UTF-8, nesting too
        # deep, an integer too long to read): a bad body like any other (SPEC §4: 422).
        return problem_response(
            422,
            ValidationFailed.code,
            ValidationFailed.title,
            "Invalid request: body",
            errors=[{"loc": ["body"], "msg": "Unparsable body", "type": "json_invalid"}],
        )
    return problem_response(
        exc.status_code, f"http_{exc.status_code}", str(exc.detail), str(exc.detail)
    )


# PostgreSQL aborts one transaction of a deadlock (40P01) or of a serialization conflict (40001);
# either is safe to run again from the start.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


def is_database_conflict(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure, however the driver and SQLAlchemy wrap it."""
    current: BaseException | None = exc
    for _ in range(5):  # a short chain of causes: SQLAlchemy's error, the driver's, ...
        if current is None:
            return False
        for candidate in (current, getattr(current, "orig", None)):
            code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
            if code in CONFLICT_SQLSTATES:
                return True
        current = current.__cause__
    return False


def _is_database_unavailable(exc: Exception) -> bool:
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
            return True
        # SQLAlchemy's asyncpg adapter wraps the driver's error, which it keeps as the cause.
        cause = getattr(exc.orig, "__cause__", None) or exc.orig
        return isinstance(cause, DRIVER_CONNECTION_LOST)
    # asyncpg raises OSError subclasses (refused, reset) straight through SQLAlchemy's pool.
    return isinstance(exc, (OSError, TimeoutError, SATimeoutError))


async def unexpected_error_response(exc: Exception) -> JSONResponse:
    """The answer to an exception nobody raised on purpose: 503 if the database is away or
    aborted the request to break a conflict (after the route's one retry)."""
    if is_database_conflict(exc):
        log.warning("database conflict: %s", exc.__class__.__name__)
        return error_response(DatabaseConflict("Retry the request: it changed nothing."))
    if _is_database_unavailable(exc):
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return error_response(ServiceUnavailable("The database is unavailable; retry shortly."))
    # Never leak a traceback: the request id lets an operator find it in the logs.
    log.error("unhandled error", exc_info=exc)
    return error_response(InternalError("An unexpected error occurred."))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return await unexpected_error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to problem+json, once, for the whole app."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
