"""A gateway that kills its process around a call, for the crash tests (``SEATS_FAULT_POINT``).

Wrapped around the configured gateway only when the test-only setting names a point, so the
money path itself carries no test hook:

* ``before_charge``: die before the call is made (the attempt is committed, nothing charged);
* ``after_charge``: die once the gateway has answered, before the answer is recorded.
"""

from __future__ import annotations

import logging
import os
import signal

from app.payments.gateway import ChargeResult, Gateway, VoidSucceeded

log = logging.getLogger(__name__)

FAULT_POINTS = frozenset({"before_charge", "after_charge"})


class CrashingGateway:
    """Delegates to ``inner``, killing the process at ``point`` (SIGKILL: no cleanup, no
    rollback, no response), as a power cut would."""

    def __init__(self, inner: Gateway, point: str) -> None:
        if point not in FAULT_POINTS:
            known = ", ".join(sorted(FAULT_POINTS))
            raise ValueError(f"unknown fault point {point!r}: expected one of {known}")
        self.inner = inner
        self.point = point

    def _die_at(self, name: str) -> None:
        if self.point == name:
            log.critical("fault point %s reached: killing the process", name)
            os.kill(os.getpid(), signal.SIGKILL)

    async def charge(
        self,
        *,
        payment_method: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        self._die_at("before_charge")
        result = await self.inner.charge(
            payment_method=payment_method,
            amount=amount,
            currency=currency,
            idempotency_key=idempotency_key,
            description=description,
        )
        self._die_at("after_charge")
        return result

    async def void(self, *, idempotency_key: str) -> VoidSucceeded:
        self._die_at("before_charge")
        voided = await self.inner.void(idempotency_key=idempotency_key)
        self._die_at("after_charge")
        return voided

    async def aclose(self) -> None:
        await self.inner.aclose()
