"""One error hierarchy, mapped once to RFC 9457 problem+json.

Domain and service code raise ``AppError`` subclasses; ``install_error_handlers`` turns them,
FastAPI's validation errors, unknown routes, wrong methods and unexpected exceptions into
``application/problem+json`` with a stable machine-readable ``code``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.observability import current_request_id

log = logging.getLogger("app.errors")

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    """Base of every error the service answers on purpose."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    headers: ClassVar[dict[str, str]] = {}
    # The extra members of the problem body, as JSON Schema (each with a description): the
    # OpenAPI document types them from here (app/openapi_errors.py).
    fields: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


# 400 / 401 / 403 / 404
class IdempotencyKeyRequired(AppError):
    status, code, title = 400, "idempotency_key_required", "Idempotency-Key header required"


class InvalidIdempotencyKey(AppError):
    status, code, title = 400, "invalid_idempotency_key", "Invalid Idempotency-Key header"


class Unauthenticated(AppError):
    status, code, title = 401, "unauthenticated", "Authentication required"
    headers = {"WWW-Authenticate": "Bearer"}


class NotPrimaryAdmin(AppError):
    status, code, title = 403, "not_primary_admin", "Only the primary account admin may do this"


class NotAdmin(AppError):
    status, code, title = 403, "not_admin", "Only an admin may do this"


class ServiceTokenRequired(AppError):
    status, code, title = 403, "service_token_required", "A service token is required"


class UnknownUser(AppError):
    status, code, title = 403, "unknown_user", "The token's user is not in the directory"


class PaymentDeclined(AppError):
    status, code, title = 402, "payment_declined", "The payment was declined"
    fields = {
        "invoice_id": {"type": "string", "description": "The failed invoice, kept in the ledger."},
        "reason": {
            "type": ["string", "null"],
            "description": "The payment service's reason for the decline.",
        },
    }


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class UserNotFound(AppError):
    status, code, title = 404, "user_not_found", "No such user in this account"


class NotAnAgent(AppError):
    status, code, title = 404, "not_an_agent", "The user is not an agent"


class InvoiceNotFound(AppError):
    status, code, title = 404, "invoice_not_found", "No such invoice"


class QuoteNotFound(AppError):
    status, code, title = 404, "quote_not_found", "No such quote"


class WebhookEndpointNotFound(AppError):
    status, code, title = 404, "webhook_endpoint_not_found", "No such webhook endpoint"


class EventNotFound(AppError):
    status, code, title = 404, "event_not_found", "No such event"


class MethodNotAllowed(AppError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


# 409 conflicts with the current state
class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict with the current state"


class TrialAlreadyUsed(Conflict):
    code, title = "trial_already_used", "The trial was already used"


class AlreadySubscribed(Conflict):
    code, title = "already_subscribed", "The account already has a paid plan"


class SeatsAssigned(Conflict):
    code, title = "seats_assigned", "Seats are assigned"
    fields = {
        "assigned": {
            "type": "integer",
            "description": "Seats assigned now: the new total must cover them (R4).",
        }
    }


class NoEmptySeat(Conflict):
    code, title = "no_empty_seat", "No empty seat"
    fields = {
        "seats": {"type": "integer", "description": "The plan's seat total."},
        "assigned": {"type": "integer", "description": "Seats assigned now (all of them)."},
    }


class NoActivePlan(Conflict):
    code, title = "no_active_plan", "No trialing or paid plan"


class NotAnIncrease(Conflict):
    code, title = "not_an_increase", "The new total is not above the current total"
    fields = {"current": {"type": "integer", "description": "The current paid seat total."}}


class NotADecrease(Conflict):
    code, title = "not_a_decrease", "The new total is not below the current total"
    fields = {"current": {"type": "integer", "description": "The current seat total."}}


class PastDue(Conflict):
    code, title = "past_due", "The plan is past due"


class QuoteStale(Conflict):
    code, title = "quote_stale", "The quote expired or no longer matches"


class RenewalDue(Conflict):
    code, title = "renewal_due", "The plan's renewal is due"


class PurchaseInProgress(Conflict):
    code, title = "purchase_in_progress", "Another purchase is in progress"


class PurchaseVoided(Conflict):
    code, title = "purchase_voided", "The purchase got no answer in time and was voided"
    fields = {
        "invoice_id": {"type": "string", "description": "The purchase's invoice, now `void`."}
    }


class InvoiceNotPayable(Conflict):
    code, title = "invoice_not_payable", "The invoice is not outstanding"


class IdempotencyKeyInUse(Conflict):
    code, title = "idempotency_key_in_use", "A request with this Idempotency-Key is running"


class PrimaryAdminRequired(Conflict):
    code, title = "primary_admin_required", "An account must keep exactly one primary admin"


class CurrencyLocked(Conflict):
    code, title = "currency_locked", "The currency cannot change once invoices exist"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Request body too large"


class ValidationFailed(AppError):
    status, code, title = 422, "validation_error", "Validation failed"
    fields = {
        "errors": {
            "type": "array",
            "description": "The failing fields.",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Where: `body`, `query` or `path`, then the field.",
                    },
                    "msg": {"type": "string", "description": "What is wrong, in words."},
                    "type": {"type": "string", "description": "The kind of error."},
                },
                "required": ["loc", "msg"],
            },
        }
    }


class UnsupportedCurrency(AppError):
    """R13: the account's currency has no seat price configured (``SEATS_PRICES``)."""

    status, code, title = 422, "unsupported_currency", "The currency has no configured seat price"
    fields = {
        "currency": {"type": "string", "description": "The currency without a price."},
        "supported": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The currencies that have a seat price.",
        },
    }

    def __init__(self, currency: str, supported: list[str], detail: str | None = None) -> None:
        super().__init__(
            detail or f"No seat price is configured for {currency}.",
            currency=currency,
            supported=supported,
        )


class WebhookUrlRefused(ValidationFailed):
    code, title = "webhook_url_refused", "The webhook URL is not allowed"


class IdempotencyKeyReused(AppError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key reused with another body"


class InternalError(AppError):
    status, code, title = 500, "internal_error", "Internal server error"


class ServiceUnavailable(AppError):
    status, code, title = 503, "service_unavailable", "Service unavailable"
    headers = {"Retry-After": "1"}


class PaymentPending(ServiceUnavailable):
    code, title = "payment_pending", "The payment is pending"
    headers = {"Retry-After": "5"}
    fields = {
        "invoice_id": {
            "type": "string",
            "description": "The pending invoice: a retry or the billing run completes it.",
        }
    }


class PaymentUnavailable(ServiceUnavailable):
    code, title = "payment_unavailable", "The payments service refused our request"
    headers = {"Retry-After": "60"}
    fields = {
        "invoice_id": {
            "type": "string",
            "description": "The invoice, still pending: nothing was charged.",
        }
    }


class NotReady(ServiceUnavailable):
    code, title = "not_ready", "Not ready"


def error_classes() -> list[type[AppError]]:
    """Every error the service answers on purpose, each ``code`` once, by status then code."""
    found: dict[str, type[AppError]] = {}
    # AppError itself is only the base: nothing raises it.
    pending: list[type[AppError]] = list(AppError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return sorted(found.values(), key=lambda cls: (cls.status, cls.code))


class DatabaseConflict(ServiceUnavailable):
    """SPEC §7: the database aborted the request twice to break a deadlock or a serialization
    conflict; nothing was kept, and a retry is safe."""

    code, title = "database_conflict", "A concurrent change conflicted with this one"


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
        return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
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
