"""The payment gateway port (SPEC §6): charge a payment method once per idempotency key, and
void a key whose charge never got a definitive answer.

Three kinds of answer, and what the caller does with each:

* a definitive one: ``ChargeSucceeded`` / ``ChargeDeclined`` (only a real decline: the payment
  method was refused) / ``VoidSucceeded``;
* ``GatewayUnavailable``: no definitive answer (timeouts, 5xx, throttling): the outcome is
  unknown, so the same key must be used again later to find out;
* ``GatewayRejected``: the payments service refused the request itself (bad credentials, wrong
  URL, a malformed request): our fault, nothing was charged, retrying the same request cannot
  help; the invoice stays pending and an operator must fix the configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class ChargeSucceeded:
    """The payment method was charged; ``charge_id`` is the gateway's id of the charge."""

    charge_id: str


@dataclass(frozen=True, slots=True)
class ChargeDeclined:
    """The gateway refused the charge for good; retrying the same request cannot succeed."""

    reason: str


ChargeResult = ChargeSucceeded | ChargeDeclined


@dataclass(frozen=True, slots=True)
class VoidSucceeded:
    """The key is void: it can never charge again; a charge it had captured was refunded
    (``refunded_charge_id``), or there was none (``None``)."""

    refunded_charge_id: str | None


class GatewayUnavailable(Exception):
    """The gateway could not be reached or did not answer in time; the outcome is unknown, so the
    same idempotency key must be used to find out."""


class GatewayRejected(Exception):
    """The payments service refused the request itself (bad credentials, wrong URL, malformed
    request: 400/401/403/404/422 and any other 4xx except 402, 408, 409, 425, 429): our fault,
    nothing was charged. Not a decline: no plan may go past due for it (SPEC §6)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Gateway(Protocol):
    """A payment gateway: ``sandbox`` in process, or ``http`` (the platform's payments service)."""

    async def charge(
        self,
        *,
        payment_method: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        """Charge ``amount`` minor units; the same ``idempotency_key`` never charges twice.

        Raises ``GatewayUnavailable`` (outcome unknown) or ``GatewayRejected`` (refused, not
        charged)."""
        ...

    async def void(self, *, idempotency_key: str) -> VoidSucceeded:
        """Make ``idempotency_key`` unable to charge, refunding a charge it captured (R14).

        Raises ``GatewayUnavailable`` (outcome unknown: void again later) or
        ``GatewayRejected``."""
        ...

    async def aclose(self) -> None:
        """Release the gateway's connections."""
        ...


def check_charge_arguments(*, amount: int, currency: str, idempotency_key: str) -> None:
    """Raise ValueError for a charge no caller should ever ask for (a programming error)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"amount must be a positive integer of minor units, got {amount!r}")
    if not _CURRENCY.fullmatch(currency):
        raise ValueError(f"currency must be 3 uppercase letters, got {currency!r}")
    check_idempotency_key(idempotency_key)


def check_idempotency_key(idempotency_key: str) -> None:
    """Raise ValueError for an empty key (a programming error)."""
    if not idempotency_key:
        raise ValueError("idempotency_key must not be empty")
