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

# The SQLSTATE classes after which this request can get no database now, and a retry shortly
# is the answer (503 with Retry-After), whichever program said so:
# - 08, connection exception: PgBouncer sends its own refusals as 08P01 ("no more connections
#   allowed (max_client_conn)", a server login that failed, "pgbouncer cannot connect to
#   server"), and a client it dropped after query_wait_timeout finds its connection gone;
# - 53, insufficient resources: too_many_connections (53300: max_connections, a role's or a
#   database's CONNECTION LIMIT), out of memory, disk full;
# - 57P, the server shutting down, crashed or still starting.
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57P")
# A named prepared statement missing (26000) or already taken (42P05) on the server connection:
# a transaction pooler gave this client another client's server connection. The operator's
# fix is SEATS_DATABASE_POOLER=transaction; meanwhile the request changed nothing.
PREPARED_STATEMENT_SQLSTATES = frozenset({"26000", "42P05"})


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: SQLAlchemy's error, the DBAPI adapter's (``orig``), the
    driver's (their ``__cause__``), in a short chain."""
    found: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(found) < 8:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        pending.extend(
            link
            for link in (getattr(current, "orig", None), current.__cause__)
            if isinstance(link, BaseException)
        )
    return found


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return code if isinstance(code, str) else None


def is_database_conflict(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure, however the driver and SQLAlchemy wrap it."""
    return any(_sqlstate(link) in CONFLICT_SQLSTATES for link in _chain(exc))


def _is_database_unavailable(exc: Exception) -> bool:
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
    ):
        return True
    for link in _chain(exc):
        code = _sqlstate(link) or ""
        if code.startswith(UNAVAILABLE_SQLSTATE_CLASSES) or code in PREPARED_STATEMENT_SQLSTATES:
            return True
        # The driver's own errors of a lost connection, raised through SQLAlchemy's errors, its
        # asyncpg adapter's (a connection the pool failed to open) or on their own; asyncpg
        # raises OSError subclasses (refused, reset) straight through SQLAlchemy's pool.
        if isinstance(link, (*DRIVER_CONNECTION_LOST, TimeoutError, SATimeoutError)):
            return True
    return False


def _why_unavailable(exc: Exception) -> str:
    """One line for the log: the driver's error at the bottom of ``exc``, its SQLSTATE and
    the first line of its message (a server's or a pooler's words, never a statement's
    parameters), and what to do about a prepared statement gone astray."""
    links = _chain(exc)
    driver = next((link for link in reversed(links) if _sqlstate(link)), links[-1])
    code = _sqlstate(driver)
    message = str(driver).strip().splitlines()[0] if str(driver).strip() else ""
    why = f"{driver.__class__.__name__}{f' ({code})' if code else ''}: {message}"
    if code in PREPARED_STATEMENT_SQLSTATES:
        why += "; behind a transaction pooler, set SEATS_DATABASE_POOLER=transaction"
    return why


async def unexpected_error_response(exc: Exception) -> JSONResponse:
    """The answer to an exception nobody raised on purpose: 503 if the database is away, out
    of connections, or aborted the request to break a conflict (after the route's one retry)."""
    if is_database_conflict(exc):
        log.warning("database conflict: %s", exc.__class__.__name__)
        return error_response(DatabaseConflict("Retry the request: it changed nothing."))
    if _is_database_unavailable(exc):
        log.warning("database unavailable: %s", _why_unavailable(exc))
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
