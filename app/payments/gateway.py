"""The payment gateway port (SPEC §6): charge a payment method once per idempotency key."""

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


class GatewayUnavailable(Exception):
    """The gateway could not be reached or did not answer in time; the outcome is unknown, so the
    same idempotency key must be used to find out."""


class GatewayRejected(Exception):
    """The payments service refused the request itself (bad credentials, wrong URL, a malformed
    request): our fault, nothing was charged, and no plan may go past due for it."""


@dataclass(frozen=True, slots=True)
class VoidSucceeded:
    """The key is void: nothing stays charged under it (``refunded_charge_id`` if it had been)."""

    refunded_charge_id: str | None


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
        """Charge ``amount`` minor units; the same ``idempotency_key`` never charges twice."""
        ...

    async def void(self, *, idempotency_key: str) -> VoidSucceeded:
        """Void the key: refund a charge made under it and refuse any later one."""
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
    if not idempotency_key:
        raise ValueError("idempotency_key must not be empty")
