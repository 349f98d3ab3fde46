"""The in-process sandbox gateway, the default (SPEC §6).

It keeps no state, so several worker processes agree on every answer: the charge id is derived
from the idempotency key, which makes a retry with the same key return the same charge, as a
real gateway's idempotency would.
"""

from __future__ import annotations

import hashlib

from app.payments.gateway import (
    ChargeDeclined,
    ChargeResult,
    ChargeSucceeded,
    GatewayUnavailable,
    VoidSucceeded,
    check_charge_arguments,
    check_idempotency_key,
)

DECLINE_PREFIX = "pm_decline"
UNAVAILABLE_PREFIX = "pm_unavailable"


def sandbox_charge_id(idempotency_key: str) -> str:
    """The charge id the sandbox answers for ``idempotency_key``."""
    return "ch_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


class SandboxGateway:
    """Declines ``pm_decline*``, is down for ``pm_unavailable*``, and charges anything else."""

    async def charge(
        self,
        *,
        payment_method: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        """Answer as the platform's payments service would, without any I/O."""
        check_charge_arguments(amount=amount, currency=currency, idempotency_key=idempotency_key)
        if payment_method.startswith(DECLINE_PREFIX):
            return ChargeDeclined("card_declined")
        if payment_method.startswith(UNAVAILABLE_PREFIX):
            raise GatewayUnavailable("sandbox: simulated outage for a pm_unavailable method")
        return ChargeSucceeded(sandbox_charge_id(idempotency_key))

    async def void(self, *, idempotency_key: str) -> VoidSucceeded:
        """Always succeeds (R14). Stateless, the sandbox cannot know whether the key was
        charged: it answers as if it had been, refunding the charge it would have made."""
        check_idempotency_key(idempotency_key)
        return VoidSucceeded(sandbox_charge_id(idempotency_key))

    async def aclose(self) -> None:
        """Nothing to release."""
