"""Internal endpoints managing webhook endpoints (service token, SPEC §8)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.deps import NowDep, ServiceDep, SessionDep, SettingsDep
from app.errors import (
    EventNotFound,
    WebhookEndpointLimitReached,
    WebhookEndpointNotFound,
    WebhookUrlRefused,
)
from app.operations import INTERNAL, declare
from app.pagination import CursorQuery, LimitQuery, Page
from app.webhooks import service
from app.webhooks.schemas import (
    EndpointIn,
    EndpointPatch,
    Redelivery,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEndpointSecret,
)

router = APIRouter(prefix="/internal/v1/webhooks", tags=["internal: webhooks"])

EndpointIdPath = Annotated[
    str,
    Path(max_length=40, pattern=r"^whe_[0-9a-z]{26}$", description="The endpoint id (`whe_...`)."),
]
EventIdPath = Annotated[
    str,
    Path(
        max_length=40,
        pattern=r"^evt_[0-9a-z]{26}$",
        description="The audit event's id (`evt_...`).",
    ),
]


def _with_secret(endpoint: object) -> WebhookEndpointSecret:
    return WebhookEndpointSecret.model_validate(endpoint)


@router.post(
    "/endpoints",
    status_code=201,
    response_model=WebhookEndpointSecret,
    operation_id="createWebhookEndpoint",
)
@declare(*INTERNAL, WebhookUrlRefused, WebhookEndpointLimitReached)
async def create_endpoint(
    body: EndpointIn, _: ServiceDep, session: SessionDep, now: NowDep, settings: SettingsDep
) -> WebhookEndpointSecret:
    """Subscribe a URL; the answer carries its signing secret, shown only this once.

    The URL must be `https` to a host that resolves only to public addresses (IPv6 forms that
    carry an IPv4 address are judged on it), on a port in 1-65535, with a valid IDNA name
    (`422 webhook_url_refused`). The service keeps at most `SEATS_WEBHOOK_MAX_ENDPOINTS`
    endpoints, disabled ones included (default 16): one more is
    `409 webhook_endpoint_limit_reached`, since every event writes one delivery per endpoint in
    the transaction that writes it.
    """
    return _with_secret(await service.create_endpoint(session, settings, now, body))


@router.get(
    "/endpoints",
    response_model=Page[WebhookEndpoint],
    operation_id="listWebhookEndpoints",
)
@declare(*INTERNAL)
async def list_endpoints(
    _: ServiceDep, session: SessionDep, limit: LimitQuery = 20, cursor: CursorQuery = None
) -> Page[WebhookEndpoint]:
    """Every endpoint, newest first."""
    rows, next_cursor = await service.list_endpoints(session, cursor, limit)
    return Page(data=[WebhookEndpoint.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/endpoints/{endpoint_id}",
    response_model=WebhookEndpoint,
    operation_id="getWebhookEndpoint",
)
@declare(*INTERNAL, WebhookEndpointNotFound)
async def get_endpoint(
    endpoint_id: EndpointIdPath, _: ServiceDep, session: SessionDep
) -> WebhookEndpoint:
    """One endpoint (without its secret)."""
    return WebhookEndpoint.model_validate(await service.get_endpoint(session, endpoint_id))


@router.patch(
    "/endpoints/{endpoint_id}",
    response_model=WebhookEndpoint,
    operation_id="updateWebhookEndpoint",
)
@declare(*INTERNAL, WebhookEndpointNotFound, WebhookUrlRefused)
async def update_endpoint(
    endpoint_id: EndpointIdPath,
    body: EndpointPatch,
    _: ServiceDep,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
) -> WebhookEndpoint:
    """Change the URL, the event types, or disable / re-enable the endpoint."""
    endpoint = await service.update_endpoint(session, settings, now, endpoint_id, body)
    return WebhookEndpoint.model_validate(endpoint)


@router.delete(
    "/endpoints/{endpoint_id}",
    status_code=204,
    operation_id="deleteWebhookEndpoint",
)
@declare(*INTERNAL, WebhookEndpointNotFound)
async def delete_endpoint(
    endpoint_id: EndpointIdPath, _: ServiceDep, session: SessionDep
) -> Response:
    """Delete the endpoint with its queue and delivery log."""
    await service.delete_endpoint(session, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret",
    response_model=WebhookEndpointSecret,
    operation_id="rotateWebhookSecret",
)
@declare(*INTERNAL, WebhookEndpointNotFound)
async def rotate_secret(
    endpoint_id: EndpointIdPath, _: ServiceDep, session: SessionDep, now: NowDep
) -> WebhookEndpointSecret:
    """A new secret; the old one keeps signing too (two signatures) for 24 hours."""
    return _with_secret(await service.rotate_secret(session, now, endpoint_id))


@router.get(
    "/endpoints/{endpoint_id}/deliveries",
    response_model=Page[WebhookAttempt],
    operation_id="listWebhookDeliveries",
)
@declare(*INTERNAL, WebhookEndpointNotFound)
async def list_deliveries(
    endpoint_id: EndpointIdPath,
    _: ServiceDep,
    session: SessionDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> Page[WebhookAttempt]:
    """The delivery log: every attempt and its answer, newest first."""
    rows, next_cursor = await service.list_attempts(session, endpoint_id, cursor, limit)
    return Page(data=[WebhookAttempt.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/events/{event_id}/redeliver",
    status_code=202,
    response_model=Redelivery,
    operation_id="redeliverEvent",
)
@declare(*INTERNAL, EventNotFound)
async def redeliver(
    event_id: EventIdPath, _: ServiceDep, session: SessionDep, now: NowDep
) -> Redelivery:
    """Queue the event again for every enabled endpoint subscribed to it."""
    return Redelivery(event_id=event_id, queued=await service.redeliver(session, now, event_id))
