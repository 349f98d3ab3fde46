"""The plan's statuses (SPEC §4), a plain enum the pure rules and the ORM model share."""

from __future__ import annotations

from enum import StrEnum


class PlanStatus(StrEnum):
    NONE = "none"
    TRIALING = "trialing"
    TRIAL_EXPIRED = "trial_expired"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"

    @property
    def grants_access(self) -> bool:
        """Agents of a trialing, active or past-due plan can work (R9: past due keeps access)."""
        return self in (PlanStatus.TRIALING, PlanStatus.ACTIVE, PlanStatus.PAST_DUE)

    @property
    def is_paid(self) -> bool:
        """A plan with a paid-through period that renews (active or past due)."""
        return self in (PlanStatus.ACTIVE, PlanStatus.PAST_DUE)
