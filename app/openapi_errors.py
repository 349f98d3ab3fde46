"""Error responses declared in the OpenAPI, so clients and fuzzers can rely on them."""

from __future__ import annotations

from typing import Any

from app.errors import PROBLEM_JSON

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
    """``responses=`` entries for these statuses, plus those every endpoint may answer."""
    every = (401, 404, 413, 422, 500, 503)
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in sorted({*statuses, *every})
    }
