"""The problems each operation may answer, declared in the OpenAPI from the error hierarchy.

``OPERATION_ERRORS`` names, per operationId, the ``AppError`` classes its handler, services
and dependencies may raise; ``problem_responses`` turns them into one problem schema per
status, whose ``code`` is an enum of exactly those codes and whose extra members are typed
from each class's ``fields``. Nothing about a code is written twice: status, title and
extras come from app/errors.py.
"""

from __future__ import annotations

from collections import defaultdict
from http import HTTPStatus
from typing import Any

from app.errors import (
    PROBLEM_JSON,
    AlreadySubscribed,
    AmountOutOfRange,
    AppError,
    Conflict,
    CurrencyLocked,
    EventNotFound,
    IdempotencyKeyInUse,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    InternalError,
    InvalidIdempotencyKey,
    InvoiceNotFound,
    InvoiceNotPayable,
    NoActivePlan,
    NoEmptySeat,
    NoPaidPeriod,
    NoScheduledChange,
    NotADecrease,
    NotAdmin,
    NotAnAgent,
    NotAnIncrease,
    NotFound,
    NotPrimaryAdmin,
    NotReady,
    PastDue,
    PayloadTooLarge,
    PaymentDeclined,
    PaymentPending,
    PaymentUnavailable,
    PrimaryAdminRequired,
    PurchaseInProgress,
    PurchaseVoided,
    QuoteNotFound,
    QuoteStale,
    RenewalDue,
    SeatsAssigned,
    SeatsScheduledForRemoval,
    ServiceTokenRequired,
    ServiceUnavailable,
    TrialAlreadyUsed,
    Unauthenticated,
    UnknownUser,
    UnsupportedCurrency,
    UserNotFound,
    ValidationFailed,
    WebhookEndpointLimitReached,
    WebhookEndpointNotFound,
    WebhookUrlRefused,
    error_classes,
)

Errors = tuple[type[AppError], ...]

# What any authenticated operation may answer: a bad token, an unknown or foreign account,
# a body over the limit, a bad parameter or body, a bug, the database away.
EVERY: Errors = (
    Unauthenticated,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    InternalError,
    ServiceUnavailable,
)
# A user under /v1 must be in the directory.
USER: Errors = (UnknownUser,)
# Idempotent POSTs (SPEC §5).
KEYED: Errors = (InvalidIdempotencyKey, IdempotencyKeyInUse, IdempotencyKeyReused)
# The platform's endpoints refuse user tokens.
INTERNAL: Errors = (ServiceTokenRequired,)

OPERATION_ERRORS: dict[str, Errors] = {
    "getPlan": USER,
    "startTrial": (
        *USER,
        *KEYED,
        NotPrimaryAdmin,
        TrialAlreadyUsed,
        AlreadySubscribed,
        UnsupportedCurrency,
    ),
    "createQuote": (
        *USER,
        *KEYED,
        NotAdmin,
        RenewalDue,
        NoPaidPeriod,
        NotADecrease,
        UnsupportedCurrency,
        AmountOutOfRange,
    ),
    "previewQuote": (
        *USER,
        NotAdmin,
        RenewalDue,
        NoPaidPeriod,
        NotADecrease,
        UnsupportedCurrency,
        AmountOutOfRange,
    ),
    "listUsers": (*USER, NotAdmin),
    "purchaseSeats": (
        *USER,
        *KEYED,
        IdempotencyKeyRequired,
        NotPrimaryAdmin,
        PaymentDeclined,
        QuoteNotFound,
        PastDue,
        PurchaseInProgress,
        NotAnIncrease,
        SeatsAssigned,
        QuoteStale,
        RenewalDue,
        PaymentPending,
        PaymentUnavailable,
        PurchaseVoided,
        UnsupportedCurrency,
        AmountOutOfRange,
    ),
    "removeSeats": (
        *USER,
        *KEYED,
        NotPrimaryAdmin,
        NoActivePlan,
        NoPaidPeriod,
        PurchaseInProgress,
        RenewalDue,
        NotADecrease,
        SeatsAssigned,
        UnsupportedCurrency,
    ),
    "cancelScheduledChange": (*USER, NotPrimaryAdmin, NoScheduledChange),
    "listAgents": USER,
    "checkAgent": (*USER, UserNotFound),
    "assignAgent": (
        *USER,
        NotAdmin,
        UserNotFound,
        NoActivePlan,
        NoEmptySeat,
        SeatsScheduledForRemoval,
    ),
    "unassignAgent": (*USER, NotAdmin, NotAnAgent),
    "listInvoices": (*USER, NotAdmin),
    "getInvoice": (*USER, NotAdmin, InvoiceNotFound),
    "payInvoice": (
        *USER,
        *KEYED,
        NotPrimaryAdmin,
        InvoiceNotFound,
        InvoiceNotPayable,
        PaymentDeclined,
        PaymentPending,
        PaymentUnavailable,
        PurchaseVoided,
    ),
    "listEvents": (*USER, NotAdmin),
    # Conflict: a concurrent upsert of the same row won; retrying succeeds.
    "upsertAccount": (*INTERNAL, CurrencyLocked, UnsupportedCurrency, Conflict),
    "upsertUser": (*INTERNAL, PrimaryAdminRequired, Conflict),
    "deleteUser": (*INTERNAL, UserNotFound, PrimaryAdminRequired, Conflict),
    "setTestClock": INTERNAL,
    "createWebhookEndpoint": (*INTERNAL, WebhookUrlRefused, WebhookEndpointLimitReached),
    "listWebhookEndpoints": INTERNAL,
    "getWebhookEndpoint": (*INTERNAL, WebhookEndpointNotFound),
    "updateWebhookEndpoint": (*INTERNAL, WebhookEndpointNotFound, WebhookUrlRefused),
    "deleteWebhookEndpoint": (*INTERNAL, WebhookEndpointNotFound),
    "rotateWebhookSecret": (*INTERNAL, WebhookEndpointNotFound),
    "listWebhookDeliveries": (*INTERNAL, WebhookEndpointNotFound),
    "redeliverEvent": (*INTERNAL, EventNotFound),
    "runBilling": INTERNAL,
}
# Unauthenticated operations: no token, no account, no body.
PUBLIC_ERRORS: dict[str, Errors] = {
    "healthz": (InternalError,),
    "readyz": (InternalError, NotReady),
    "metrics": (InternalError, Unauthenticated),
}

_DESCRIPTIONS = {
    400: "Bad request (problem+json; e.g. idempotency_key_required)",
    401: "unauthenticated: missing, malformed, expired or wrongly signed token",
    402: "payment_declined: a failed invoice was recorded, nothing else changed",
    403: "not_primary_admin, not_admin, unknown_user or service_token_required",
    404: "not_found (also for another account's path), or the resource's own code",
    405: "method_not_allowed",
    409: "Conflict with the current state; `code` says which rule",
    413: "payload_too_large",
    422: "validation_error (with `errors`), idempotency_key_reused, or unsupported_currency",
    500: "internal_error: the body carries the request id, never a traceback",
    503: "service_unavailable, payment_pending, payment_unavailable or database_conflict "
    "(with Retry-After): retry later",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these statuses, plus those every endpoint may answer.

    The document replaces them with the codes of ``OPERATION_ERRORS``; an operation missing
    there keeps every code of these statuses.
    """
    every = (401, 404, 413, 422, 500, 503)
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in sorted({*statuses, *every})
    }


def errors_of(operation_id: str, declared_statuses: set[int]) -> Errors:
    """The errors an operation may answer; by declared status for one not in the table."""
    if operation_id in PUBLIC_ERRORS:
        return PUBLIC_ERRORS[operation_id]
    if operation_id in OPERATION_ERRORS:
        return (*EVERY, *OPERATION_ERRORS[operation_id])
    return tuple(cls for cls in error_classes() if cls.status in declared_statuses)


_BASE_PROPERTIES: dict[str, Any] = {
    "type": {
        "type": "string",
        "description": "A URI naming the problem: `https://seats.conversations/problems/<code>`.",
        "examples": ["https://seats.conversations/problems/seats_assigned"],
    },
    "title": {"type": "string", "description": "The problem in a few words; fixed per code."},
    "status": {"type": "integer", "description": "The HTTP status, repeated."},
    "detail": {"type": "string", "description": "This occurrence of the problem, in words."},
    "code": {
        "type": "string",
        "description": "The stable machine-readable code: branch on this, never on the text.",
        "examples": ["seats_assigned"],
    },
    "request_id": {
        "type": ["string", "null"],
        "description": "The request's `X-Request-ID`, for a support ticket.",
    },
}
_REQUIRED = ["type", "title", "status", "detail", "code", "request_id"]


def problem_schema() -> dict[str, Any]:
    """The base ``Problem``: any code (SPEC §4), as the service answers it."""
    return {
        "title": "Problem",
        "type": "object",
        "description": "RFC 9457 problem details with the service's stable `code`. Problems "
        "of some codes carry more members, typed in each operation's responses.",
        "properties": _BASE_PROPERTIES,
        "required": _REQUIRED,
    }


def _camel(text: str) -> str:
    return "".join(word.capitalize() for word in text.replace("-", "_").split("_"))


def problem_schema_of(errors: Errors) -> dict[str, Any]:
    """One status's problems: ``code`` is an enum of these codes; their extras are typed."""
    codes = sorted({cls.code for cls in errors})
    properties = dict(_BASE_PROPERTIES)
    properties["code"] = {
        "type": "string",
        "enum": codes,
        "description": _BASE_PROPERTIES["code"]["description"],
    }
    carried: dict[str, list[str]] = defaultdict(list)
    schemas: dict[str, dict[str, Any]] = {}
    for cls in sorted(errors, key=lambda cls: cls.code):
        for name, schema in cls.fields.items():
            carried[name].append(cls.code)
            schemas.setdefault(name, schema)
    for name, schema in schemas.items():
        which = ", ".join(f"`{code}`" for code in carried[name])
        properties[name] = {**schema, "description": f"{schema['description']} Sent with {which}."}
    return {"type": "object", "properties": properties, "required": _REQUIRED}


def problem_responses(operation_id: str, errors: Errors) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per status: (component name, schema) of the problems an operation may answer."""
    by_status: dict[int, list[type[AppError]]] = defaultdict(list)
    for cls in errors:
        if cls not in by_status[cls.status]:
            by_status[cls.status].append(cls)
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for status, classes in sorted(by_status.items()):
        if len({cls.code for cls in classes}) == 1:
            # One code: one schema shared by every operation that answers it.
            name = f"{_camel(classes[0].code)}Problem"
        else:
            phrase = _camel(HTTPStatus(status).phrase.replace(" ", "_"))
            name = f"{operation_id[0].upper()}{operation_id[1:]}{phrase}Problem"
        out[str(status)] = (name, {"title": name, **problem_schema_of(tuple(classes))})
    return out


def describe(errors: Errors, status: int) -> str:
    """A response description that lists its codes and their titles."""
    lines = [f"`{cls.code}`: {cls.title}." for cls in errors if cls.status == status]
    return " ".join(sorted(set(lines)))
