"""The ``http`` gateway: the platform's payments service, called with httpx (SPEC §6).

Requests::

    POST {base_url}/charges
    Idempotency-Key: <key>                 (the invoice id: one charge per key, ever)
    Authorization: Bearer <api_key>        (only when an api key is configured)
    {"payment_method": "pm_...", "amount": 1900, "currency": "USD", "description": "..."}

    POST {base_url}/charges/{key}/void     (R14: the key can never charge again)
    Idempotency-Key: <key>
    Authorization: Bearer <api_key>

Response contract of the payments service, and what each answer becomes.

A charge:

* 2xx ``{"id": "ch_...", "status": "succeeded"}``     -> ``ChargeSucceeded(id)``
* 2xx ``{"status": "declined", "reason": "..."}``      -> ``ChargeDeclined(reason)``
* 402 ``{"reason": "..."}`` (or ``{"code": "..."}``)   -> ``ChargeDeclined(reason)``

  These two are the only declines: the payment method itself was refused.

A void:

* 2xx ``{"status": "voided", "refunded_charge_id": "ch_..." | null}`` -> ``VoidSucceeded``

Both:

* any other 4xx except 408, 409, 425 and 429 (400, 401, 403, 404, 422, ...; for a void, 402
  too) -> ``GatewayRejected`` at once, never retried: the service refused the request itself
  (bad credentials, a wrong URL, a malformed request). That is our fault, not the customer's:
  nothing was charged, so it must not count as a decline (a wrong API key would otherwise
  send every plan past due); the caller keeps the invoice pending and reports it.
* 408, 409 (the same key is still being processed), 425, 429, 5xx, any other status, a 2xx
  whose body is not one of the above, timeouts (connect, read, write, pool), refused or
  reset connections -> unknown outcome: retried.

Retries always reuse the same idempotency key, so a charge that went through before the
connection dropped is answered from the service's idempotency store instead of charging again
(and a void is idempotent by its path). At most ``max_attempts`` attempts are made,
``backoff * 2**n`` seconds apart (a numeric ``Retry-After`` header is obeyed instead, up to
2 s); then ``GatewayUnavailable`` is raised and the caller keeps the invoice pending. A
definitive answer is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from app.payments.gateway import (
    ChargeDeclined,
    ChargeResult,
    ChargeSucceeded,
    GatewayRejected,
    GatewayUnavailable,
    VoidSucceeded,
    check_charge_arguments,
    check_idempotency_key,
)

T = TypeVar("T")

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 2.0
# Statuses that say "not now" rather than "no": the same request may succeed later.
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


@dataclass(frozen=True, slots=True)
class _Retry:
    """One attempt ended without a definitive answer."""

    what: str
    retry_after: float | None = None


class HttpGateway:
    """Charges through the platform's payments service over HTTP, retrying with the same key."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
        backoff: float = 0.2,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if backoff < 0:
            raise ValueError(f"backoff must not be negative, got {backoff}")
        self.max_attempts = max_attempts
        self.backoff = backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Write and pool waits share the read timeout: each bounds how long a charge may hang.
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=headers, transport=transport
        )

    async def charge(
        self,
        *,
        payment_method: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        """POST /charges until a definitive answer; GatewayUnavailable or GatewayRejected."""
        check_charge_arguments(amount=amount, currency=currency, idempotency_key=idempotency_key)
        body = {
            "payment_method": payment_method,
            "amount": amount,
            "currency": currency,
            "description": description,
        }
        return await self._until_definitive("/charges", body, idempotency_key, _interpret_charge)

    async def void(self, *, idempotency_key: str) -> VoidSucceeded:
        """POST /charges/{key}/void until a definitive answer; GatewayUnavailable or
        GatewayRejected."""
        check_idempotency_key(idempotency_key)
        path = f"/charges/{quote(idempotency_key, safe='')}/void"
        return await self._until_definitive(path, None, idempotency_key, _interpret_void)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _until_definitive(
        self,
        path: str,
        body: dict[str, Any] | None,
        idempotency_key: str,
        interpret: Callable[[httpx.Response], T | _Retry],
    ) -> T:
        headers = {"Idempotency-Key": idempotency_key}
        for attempt in range(self.max_attempts):
            outcome = await self._attempt(path, body, headers, interpret)
            if not isinstance(outcome, _Retry):
                return outcome
            if attempt + 1 == self.max_attempts:
                raise GatewayUnavailable(
                    f"payments service: no definitive answer to POST {path} after "
                    f"{self.max_attempts} attempt(s) for idempotency key {idempotency_key!r}; "
                    f"last: {outcome.what}"
                )
            delay = self.backoff * 2**attempt
            if outcome.retry_after is not None:
                delay = outcome.retry_after
            log.warning(
                "payments: attempt %d/%d of POST %s for key %r: %s; retrying in %.2fs",
                attempt + 1,
                self.max_attempts,
                path,
                idempotency_key,
                outcome.what,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
        interpret: Callable[[httpx.Response], T | _Retry],
    ) -> T | _Retry:
        try:
            response = await self._client.post(path, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            return _Retry(f"{type(exc).__name__} (timed out)")
        except httpx.RequestError as exc:
            return _Retry(f"{type(exc).__name__}: {exc}")
        return interpret(response)


def _interpret_charge(response: httpx.Response) -> ChargeResult | _Retry:
    """Map one answer to POST /charges (see the module docstring)."""
    status = response.status_code
    payload = _json_object(response)
    if 200 <= status < 300:
        charge_id = payload.get("id")
        if payload.get("status") == "succeeded" and isinstance(charge_id, str) and charge_id:
            return ChargeSucceeded(charge_id)
        if payload.get("status") == "declined":
            return ChargeDeclined(_reason(payload))
        return _Retry(f"HTTP {status} with an unrecognised body: {response.text[:200]!r}")
    if status == 402:
        return ChargeDeclined(_reason(payload))
    return _refusal_or_retry(response, payload)


def _interpret_void(response: httpx.Response) -> VoidSucceeded | _Retry:
    """Map one answer to POST /charges/{key}/void (see the module docstring)."""
    status = response.status_code
    payload = _json_object(response)
    if 200 <= status < 300:
        refunded = payload.get("refunded_charge_id")
        if payload.get("status") == "voided" and (refunded is None or isinstance(refunded, str)):
            return VoidSucceeded(refunded or None)
        return _Retry(f"HTTP {status} with an unrecognised body: {response.text[:200]!r}")
    return _refusal_or_retry(response, payload)


def _refusal_or_retry(response: httpx.Response, payload: dict[str, Any]) -> _Retry:
    """A non-2xx answer that is not a decline: the service's own refusal, or "not now"."""
    status = response.status_code
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        code = payload.get("code")
        what = f" ({code})" if isinstance(code, str) and code else ""
        raise GatewayRejected(
            f"payments service refused POST {response.request.url.path}: HTTP {status}{what}",
            status=status,
        )
    return _Retry(f"HTTP {status}", retry_after_seconds(response))


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _reason(payload: dict[str, Any]) -> str:
    for field in ("reason", "code"):
        value = payload.get(field)
        if isinstance(value, str) and value:
            return value
    return "declined"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """A numeric Retry-After in seconds, capped; an HTTP date or garbage is ignored."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)
