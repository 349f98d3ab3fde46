"""``POST /internal/v1/billing/run``: what cron calls over HTTP (SPEC §4)."""

from __future__ import annotations

from fastapi import APIRouter

from app.billing_run.run import BillingRun, RunReport, run_billing
from app.deps import ClockDep, CollectorDep, DbDep, IdempotencyDep, ServiceDep, SettingsDep
from app.operations import INTERNAL, declare

router = APIRouter(tags=["internal: billing"])


@router.post(
    "/internal/v1/billing/run",
    operation_id="runBilling",
    response_model=RunReport,
)
@declare(*INTERNAL)
async def billing_run(
    _: ServiceDep,
    db: DbDep,
    collector: CollectorDep,
    idem: IdempotencyDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> RunReport:
    """Process what is due now: trial expiries, pending purchases (voided after
    SEATS_PENDING_PURCHASE_HOURS), renewals, retries, dunning and clean-up. The report names
    every item that failed; `needs_operator` says whether a person must look."""
    return await run_billing(BillingRun(db, collector, idem, clock, settings))
