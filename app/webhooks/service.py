"""Managing webhook endpoints, reading the delivery log, redelivering an event (SPEC §8)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import EventNotFound, WebhookEndpointLimitReached, WebhookEndpointNotFound
from app.ids import new_id
from app.pagination import next_cursor
from app.webhooks import repository
from app.webhooks.models import WebhookAttempt, WebhookEndpoint
from app.webhooks.outbox import delivery_rows, render
from app.webhooks.schemas import EndpointIn, EndpointPatch
from app.webhooks.urls import allowed_hosts, screen

# How long the secret a rotation replaced keeps signing: receivers switch within this time.
ROTATION_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a send is signed with: the current one, and the previous during overlap."""
    keys = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        keys.append(endpoint.previous_secret)
    return keys


async def _endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await repository.get_endpoint(session, endpoint_id)
    if endpoint is None:
        raise WebhookEndpointNotFound(f"No webhook endpoint {endpoint_id}.")
    return endpoint


async def create_endpoint(
    session: AsyncSession, settings: Settings, now: datetime, body: EndpointIn
) -> WebhookEndpoint:
    """A new endpoint with a fresh secret, subscribed from now on, within the service's limit
    (disabled endpoints count: re-enabling one must not pass it)."""
    url = await screen(body.url, allowed_hosts(settings.webhook_allow_hosts))
    limit = settings.webhook_max_endpoints
    if await repository.count_endpoints_locked(session) >= limit:
        raise WebhookEndpointLimitReached(
            f"The service keeps at most {limit} webhook endpoints; delete one first.",
            limit=limit,
        )
    endpoint = WebhookEndpoint(
        id=new_id("whe"),
        url=url,
        description=body.description,
        event_types=body.event_types,
        disabled=False,
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def list_endpoints(
    session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[WebhookEndpoint], str | None]:
    """Endpoints, newest first."""
    rows = await repository.list_endpoints(session, cursor, limit)
    return next_cursor(rows, limit, lambda e: (e.created_at, e.id))


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint, or ``webhook_endpoint_not_found``."""
    return await _endpoint(session, endpoint_id)


async def update_endpoint(
    session: AsyncSession, settings: Settings, now: datetime, endpoint_id: str, body: EndpointPatch
) -> WebhookEndpoint:
    """Change the URL, the event types or whether the endpoint is disabled."""
    endpoint = await _endpoint(session, endpoint_id)
    fields = body.model_fields_set
    if "url" in fields and body.url is not None:
        endpoint.url = await screen(body.url, allowed_hosts(settings.webhook_allow_hosts))
    if "event_types" in fields:
        endpoint.event_types = body.event_types
    if "description" in fields and body.description is not None:
        endpoint.description = body.description
    if "disabled" in fields and body.disabled is not None:
        if endpoint.disabled and not body.disabled:
            # A fresh start: the five days of failures count again from the next failure.
            endpoint.failing_since = None
            endpoint.disabled_reason = None
        elif body.disabled and not endpoint.disabled:
            endpoint.disabled_reason = "manual"
        endpoint.disabled = body.disabled
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    """Delete the endpoint, its queue and its log."""
    endpoint = await _endpoint(session, endpoint_id)
    await session.delete(endpoint)
    await session.flush()


async def rotate_secret(session: AsyncSession, now: datetime, endpoint_id: str) -> WebhookEndpoint:
    """A new secret; the replaced one keeps signing for 24 hours."""
    endpoint = await _endpoint(session, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def list_attempts(
    session: AsyncSession, endpoint_id: str, cursor: str | None, limit: int
) -> tuple[list[WebhookAttempt], str | None]:
    """The endpoint's delivery log, newest first."""
    await _endpoint(session, endpoint_id)
    rows = await repository.list_attempts(session, endpoint_id, cursor, limit)
    return next_cursor(rows, limit, lambda a: (a.at, a.id))


async def redeliver(session: AsyncSession, now: datetime, event_id: str) -> int:
    """Queue the event again for every enabled endpoint subscribed to it; how many."""
    event = await repository.get_event(session, event_id)
    if event is not None:
        event_type = event.type
        body = render(event.id, event.type, event.account_id, event.at, event.data)
    else:
        earlier = await repository.any_delivery_of(session, event_id)
        if earlier is None:
            raise EventNotFound(f"No event {event_id}.")
        event_type, body = earlier.event_type, earlier.body
    endpoints = await repository.enabled_endpoints(session)
    rows = delivery_rows(endpoints, event_id=event_id, event_type=event_type, body=body, at=now)
    await repository.insert_deliveries(session, rows)
    return len(rows)
