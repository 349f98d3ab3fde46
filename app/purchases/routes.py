"""The purchase endpoint (SPEC §4). Thin: authenticate, call the purchase service, answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.deps import CallerApartDep, ClockDep, CollectorDep, DbDep, OnceDep, SettingsDep
from app.openapi_errors import problems
from app.purchases import service
from app.seats.schemas import PurchaseIn, PurchaseOut

router = APIRouter(prefix="/v1/accounts/{account_id}/conversations", tags=["seats"])


@router.post(
    "/purchases",
    status_code=201,
    response_model=PurchaseOut,
    responses=problems(400, 402, 403, 409, 422, 503),
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
