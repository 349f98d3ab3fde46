"""``POST /internal/v1/billing/run``: what cron calls over HTTP (SPEC §4)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from app.billing_run.run import BillingRun, RunReport, run_billing
from app.deps import ClockDep, CollectorDep, DbDep, IdempotencyDep, ServiceDep, SettingsDep
from app.openapi_errors import problems

router = APIRouter(tags=["internal: billing"])


def report_body(report: RunReport) -> dict[str, Any]:
    """The run's report as JSON, with whether it needs an operator."""
    return {**asdict(report), "needs_operator": report.needs_operator}


@router.post("/internal/v1/billing/run", responses=problems(403))
async def billing_run(
    _: ServiceDep,
    db: DbDep,
    collector: CollectorDep,
    idem: IdempotencyDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Process what is due now: trial expiries, pending purchases, renewals, retries,
    dunning and clean-up. The report names every item that failed."""
    report = await run_billing(BillingRun(db, collector, idem, clock, settings))
    return report_body(report)
