"""What a gateway attempt does and what came of it: plain enums the pure collection policy
and the ORM models share."""

from __future__ import annotations

from enum import StrEnum


class AttemptOperation(StrEnum):
    CHARGE = "charge"
    VOID = "void"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"  # charged: final
    DECLINED = "declined"  # refused for good: final for this key
    VOIDED = "voided"  # the key was voided: final
    UNAVAILABLE = "unavailable"  # no definitive answer: ask again under the same key
    REJECTED = "rejected"  # the payments service refused our request (our fault): nothing charged

    @property
    def is_definitive(self) -> bool:
        """Whether the gateway's answer settles what happened under the key."""
        return self in (AttemptOutcome.SUCCEEDED, AttemptOutcome.DECLINED, AttemptOutcome.VOIDED)
