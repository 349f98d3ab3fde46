"""HTTP endpoints of the seats API (SPEC §4). Thin: authenticate, call one service, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from app.billing.pricing import MAX_SEATS
from app.deps import (
    AccountIdPath,
    CallerApartDep,
    CallerDep,
    ClockDep,
    DbDep,
    NowDep,
    OnceDep,
    ReplicaCallerDep,
    ReplicaNowDep,
    ReplicaSessionDep,
    SessionDep,
    SettingsDep,
    UserIdPath,
)
from app.errors import (
    AlreadySubscribed,
    AmountOutOfRange,
    NoActivePlan,
    NoEmptySeat,
    NoPaidPeriod,
    NoScheduledChange,
    NotADecrease,
    NotAdmin,
    NotAnAgent,
    NotPrimaryAdmin,
    PurchaseInProgress,
    RenewalDue,
    SeatsAssigned,
    SeatsScheduledForRemoval,
    TrialAlreadyUsed,
    UnsupportedCurrency,
    UserNotFound,
)
from app.fast import routes as fast
from app.operations import USER, Key, declare
from app.pagination import CursorQuery, LimitQuery, Page
from app.retry import RetryOnConflictRoute
from app.seats import agents, service
from app.seats.schemas import (
    AccountUser,
    AgentCheck,
    AgentOut,
    Effective,
    PlanSummary,
    QuoteIn,
    QuoteOut,
    QuotePreview,
    RemovalIn,
)

router = APIRouter(
    prefix="/v1/accounts/{account_id}/conversations",
    tags=["seats"],
    route_class=RetryOnConflictRoute,
)


@router.get("", response_model=PlanSummary)
@declare(*USER)
async def get_plan(
    caller: ReplicaCallerDep,
    session: ReplicaSessionDep,
    settings: SettingsDep,
    now: ReplicaNowDep,
) -> PlanSummary:
    """The plan summary. Any user of the account, and services."""
    return await service.get_summary(session, caller, settings, now)


@router.post("/trial", status_code=201, response_model=PlanSummary)
@declare(
    *USER,
    NotPrimaryAdmin,
    TrialAlreadyUsed,
    AlreadySubscribed,
    UnsupportedCurrency,
    key=Key.OPTIONAL,
)
async def start_trial(
    caller: CallerApartDep,
    once: OnceDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Start the 20-seat trial (R3). Primary admin only (R1); once per account."""
    # Checked before the key is claimed too, so that a refused caller writes nothing.
    caller.require_primary_admin()
    return await once.run(201, lambda s, now: service.start_trial(s, caller, now, settings))


SeatsQuery = Annotated[
    int, Query(ge=0, le=MAX_SEATS, description="The new seat total to price.", examples=[25])
]


EffectiveQuery = Annotated[
    Effective,
    Query(description="For a decrease: at once (`now`) or at the paid period's end (R15)."),
]


@router.get("/quote-preview", response_model=QuotePreview)
@declare(
    *USER, NotAdmin, RenewalDue, NoPaidPeriod, NotADecrease, UnsupportedCurrency, AmountOutOfRange
)
async def preview_quote(
    seats: SeatsQuery,
    caller: CallerApartDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
    effective: EffectiveQuery = Effective.NOW,
) -> QuotePreview:
    """A quote's body for a total, computed and not stored (R8): what a slider asks as it
    moves. Admins, the primary admin and services."""
    return await service.preview_quote(db, clock, caller, seats, settings, effective)


@router.post("/quotes", status_code=201, response_model=QuoteOut)
@declare(
    *USER,
    NotAdmin,
    RenewalDue,
    NoPaidPeriod,
    NotADecrease,
    UnsupportedCurrency,
    AmountOutOfRange,
    key=Key.OPTIONAL,
)
async def create_quote(
    body: QuoteIn,
    caller: CallerApartDep,
    once: OnceDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Price a new total, up or down (R8). Charges nothing; expires in 15 minutes."""
    # Checked before the key is claimed too, so that a refused caller writes nothing.
    caller.require_admin()
    return await once.run(
        201,
        lambda s, now: service.create_quote(s, caller, body.seats, now, settings, body.effective),
    )


@router.post("/removals", response_model=PlanSummary)
@declare(
    *USER,
    NotPrimaryAdmin,
    NoActivePlan,
    PurchaseInProgress,
    NotADecrease,
    SeatsAssigned,
    UnsupportedCurrency,
    NoPaidPeriod,
    RenewalDue,
    key=Key.OPTIONAL,
)
async def remove_seats(
    body: RemovalIn,
    caller: CallerApartDep,
    once: OnceDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Lower the total at once (R7), or schedule it for the end of the paid period with
    `"effective": "period_end"` (R15: the seats stay usable until then, the next renewal
    invoices the new total). Only empty seats can go (R4). No refund."""
    # Checked before the key is claimed too, so that a refused caller writes nothing.
    caller.require_primary_admin()
    return await once.run(
        200,
        lambda s, now: service.remove_seats(s, caller, body.seats, now, settings, body.effective),
    )


@router.delete("/scheduled-change", status_code=204)
@declare(*USER, NotPrimaryAdmin, NoScheduledChange)
async def cancel_scheduled_change(caller: CallerDep, session: SessionDep, now: NowDep) -> Response:
    """Cancel the decrease scheduled for the end of the paid period (R15). Primary admin
    only (R1). `404 no_scheduled_change` when none is scheduled, including one that has
    already taken effect: a retried request whose first answer was lost reads the summary."""
    await service.cancel_scheduled_change(session, caller, now)
    return Response(status_code=204)


@router.get("/agents", response_model=Page[AgentOut])
@declare(*USER)
async def list_agents(
    caller: ReplicaCallerDep,
    session: ReplicaSessionDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> Page[AgentOut]:
    """The agents, newest first."""
    data, next_cursor = await agents.list_agents(session, caller, cursor, limit)
    return Page(data=data, next_cursor=next_cursor)


@router.get("/users", response_model=Page[AccountUser])
@declare(*USER, NotAdmin)
async def list_users(
    caller: ReplicaCallerDep,
    session: ReplicaSessionDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> Page[AccountUser]:
    """The account's users from the directory, newest first, with whether each is an agent:
    whom to assign. Admins, the primary admin and services."""
    data, next_cursor = await agents.list_users(session, caller, cursor, limit)
    return Page(data=data, next_cursor=next_cursor)


@declare(*USER, UserNotFound)
async def check_agent(
    account_id: AccountIdPath,
    user_id: UserIdPath,
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Is this user an agent with access now? The inbox asks on every page load.

    On PostgreSQL each worker answers from its cache of recent answers, which the database's
    notification of any change to access clears on every worker within milliseconds (100 ms
    at most, while the worker listens): just after a change, a check may still see the old
    answer for that long. A trial ends exactly at its end."""
    # Served by app/fast/routes.py ahead of the router; this route answers what that layer
    # passes on (ids FastAPI must refuse, a root path) with the same function, and documents
    # the operation. The body's bytes directly: the response model stays declared, for the
    # schema.
    status, body = await fast.check_agent(request.app.state, authorization, account_id, user_id)
    return Response(body, status_code=status, media_type=fast.JSON)


# A plain APIRoute: one autocommit statement cannot be aborted by a deadlock or a
# serialization conflict, so there is nothing to retry and no exit stack to pay for.
router.add_api_route(
    "/agents/{user_id}",
    check_agent,
    methods=["GET"],
    response_model=AgentCheck,
    route_class_override=APIRoute,
)


@router.put(
    "/agents/{user_id}",
    status_code=201,
    response_model=AgentOut,
    responses={200: {"description": "Already an agent", "model": AgentOut}},
)
@declare(*USER, NotAdmin, UserNotFound, NoActivePlan, NoEmptySeat, SeatsScheduledForRemoval)
async def assign_agent(
    account_id: AccountIdPath,
    user_id: UserIdPath,
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Assign a seat (R5): 201 new agent, 200 already one."""
    # Served by app/fast/routes.py ahead of the router, with this same function: the caller's
    # role is read with the plan's lock, in one statement (no CallerDep).
    status, body = await fast.assign_agent(request.app.state, authorization, account_id, user_id)
    return Response(body, status_code=status, media_type=fast.JSON)


@router.delete("/agents/{user_id}", status_code=204)
@declare(*USER, NotAdmin, NotAnAgent)
async def unassign_agent(
    account_id: AccountIdPath,
    user_id: UserIdPath,
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Free the user's seat at once (R5)."""
    # Served by app/fast/routes.py ahead of the router, with this same function.
    status, _ = await fast.unassign_agent(request.app.state, authorization, account_id, user_id)
    return Response(status_code=status)
