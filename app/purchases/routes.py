"""The purchase endpoint (SPEC §4). Thin: authenticate, call the purchase service, answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.deps import (
    CallerApartDep,
    ClockDep,
    CollectorDep,
    DbDep,
    OnceDep,
    SettingsDep,
)
from app.errors import (
    AmountOutOfRange,
    NotAnIncrease,
    NotPrimaryAdmin,
    PastDue,
    PaymentDeclined,
    PaymentPending,
    PaymentUnavailable,
    PurchaseInProgress,
    PurchaseVoided,
    QuoteNotFound,
    QuoteStale,
    RenewalDue,
    SeatsAssigned,
    UnsupportedCurrency,
)
from app.operations import USER, Key, declare
from app.purchases import service
from app.seats.schemas import PurchaseIn, PurchaseOut

router = APIRouter(prefix="/v1/accounts/{account_id}/conversations", tags=["seats"])


@router.post(
    "/purchases",
    status_code=201,
    response_model=PurchaseOut,
)
@declare(
    *USER,
    NotPrimaryAdmin,
    PaymentDeclined,
    QuoteNotFound,
    PastDue,
    PurchaseInProgress,
    NotAnIncrease,
    SeatsAssigned,
    QuoteStale,
    RenewalDue,
    PaymentPending,
    PaymentUnavailable,
    PurchaseVoided,
    UnsupportedCurrency,
    AmountOutOfRange,
    key=Key.REQUIRED,
)
async def purchase_seats(
    body: PurchaseIn,
    caller: CallerApartDep,
    once: OnceDep,
    db: DbDep,
    collector: CollectorDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Raise the total, charging the prorated price now (R6). Needs an `Idempotency-Key`."""
    deps = service.Purchases(db, collector, clock, settings)
    reply = await service.purchase(deps, caller, once, body)
    return reply.to_response()
