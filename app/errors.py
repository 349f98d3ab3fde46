"""One error hierarchy: every error the service answers on purpose, with its status, stable
``code``, title and extra fields (SPEC §4).

Plain Python, so that the pure core (``app.billing``, ``app.seats.rules``) can raise these
without loading FastAPI or the ORM; ``app.problems`` maps them, once, to RFC 9457
problem+json.
"""

from __future__ import annotations

from typing import Any, ClassVar

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


class NoScheduledChange(AppError):
    status, code, title = 404, "no_scheduled_change", "No change is scheduled"


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


class NoPaidPeriod(Conflict):
    code, title = "no_paid_period", "The plan has no paid period to wait for"


class SeatsScheduledForRemoval(Conflict):
    code, title = "seats_scheduled_for_removal", "The empty seats are scheduled for removal"
    fields = {
        "scheduled_seats": {
            "type": "integer",
            "description": "The total scheduled for the period's end (R15): agents beyond it "
            "cannot be assigned until the schedule is canceled.",
        },
        "effective_at": {
            "type": "string",
            "format": "date-time",
            "description": "When the scheduled total takes effect.",
        },
    }


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


class WebhookEndpointLimitReached(Conflict):
    """Every event writes one delivery per endpoint in its own transaction: the fan-out is
    bounded by ``SEATS_WEBHOOK_MAX_ENDPOINTS``."""

    code, title = "webhook_endpoint_limit_reached", "The service has all the endpoints it allows"
    fields = {
        "limit": {
            "type": "integer",
            "description": "SEATS_WEBHOOK_MAX_ENDPOINTS: endpoints the service keeps, disabled "
            "ones included. Delete one to add another.",
        }
    }


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


class AmountOutOfRange(AppError):
    """R18: an amount the ledger's columns (a signed 64-bit integer) cannot hold."""

    status, code, title = 422, "amount_out_of_range", "The amount is too large for the ledger"


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
