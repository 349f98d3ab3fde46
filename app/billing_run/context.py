"""What a billing run needs, what it reports, and how a job counts its items and failures."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.clock import Clock
from app.collection.service import Collector
from app.config import Settings
from app.db import Database
from app.errors import AppError
from app.idempotency import IdempotencyStore

# One logger for the whole run, under the name operators already filter on.
log = logging.getLogger("app.billing_run.run")

PROGRESS_EVERY = 500


@dataclass
class RunReport:
    """What one run did, and what needs an operator (``errors``, ``charges_unavailable``)."""

    trials_expired: int = 0
    renewals_invoiced: int = 0
    renewals_paid: int = 0
    renewals_declined: int = 0
    purchases_completed: int = 0
    purchases_failed: int = 0
    purchases_voided: int = 0
    plans_canceled: int = 0
    trial_reminders_sent: int = 0
    renewal_reminders_sent: int = 0
    charges_unavailable: int = 0
    charges_in_flight_elsewhere: int = 0
    idempotency_keys_purged: int = 0
    quotes_purged: int = 0
    items: int = 0
    errors: list[str] = field(default_factory=list)
    needs_operator: bool = False  # set at the end: anything a person must look at

    def close(self) -> RunReport:
        """Decide ``needs_operator`` (the CLI then exits 1); the report is final."""
        self.needs_operator = bool(self.errors) or self.charges_unavailable > 0
        return self


@dataclass(frozen=True, slots=True)
class BillingRun:
    """What a run needs."""

    db: Database
    collector: Collector
    idempotency: IdempotencyStore
    clock: Clock
    settings: Settings


def code_of(exc: Exception) -> str:
    """How the report names a failure: the problem's code, else the exception's type."""
    return exc.code if isinstance(exc, AppError) else type(exc).__name__


def count_failure(report: RunReport, job: str, item: str, exc: Exception) -> None:
    code = code_of(exc)
    if not isinstance(exc, AppError):
        log.error("%s: %s failed", job, item, exc_info=exc)
    report.errors.append(f"{item}: {code}")


def count_item(report: RunReport, job: str) -> None:
    report.items += 1
    if report.items % PROGRESS_EVERY == 0:
        log.info("billing run: %d items so far (now: %s)", report.items, job)
