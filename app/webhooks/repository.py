"""SQL for webhook endpoints, the outbox and the delivery log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Insert,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger.models import Event
from app.pagination import keyset
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint


def enabled_endpoints_sync(conn: Connection) -> list[tuple[str, list[str] | None]]:
    """(id, event_types) of every enabled endpoint, in the caller's transaction (sync)."""
    stmt = select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
        WebhookEndpoint.disabled.is_(False)
    )
    return [(row[0], row[1]) for row in conn.execute(stmt)]


def insert_deliveries_sync(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Queue outbox rows in the caller's transaction (sync, for the flush hook)."""
    conn.execute(insert(WebhookDelivery), list(rows))


def _subscribed_pg(event_types: ColumnElement[Any], event_type: ColumnElement[Any]) -> Any:
    # ``outbox.subscribed`` in SQL: no list (SQL NULL, or the JSON null an ORM write of None
    # stores) means every type; otherwise the type must be one of the list's strings.
    return or_(
        event_types.is_(None),
        func.json_typeof(event_types) == literal_column("'null'"),
        cast(event_types, JSONB).has_key(event_type),
    )


def deliveries_of_written_event(written: FromClause) -> Insert:
    """One outbox row per enabled endpoint subscribed to the event ``written`` returns (its
    ``id``, ``type`` and ``at``), with the body ``:delivery_body``, due at once:
    ``outbox.delivery_rows`` as PostgreSQL SQL."""
    endpoint = WebhookEndpoint.__table__.c
    rows = select(
        endpoint.id,
        written.c.id,
        written.c.type,
        bindparam("delivery_body", type_=Text()),
        literal_column(f"'{DeliveryStatus.PENDING.value}'"),
        literal_column("0"),
        written.c.at,
        written.c.at,
    ).select_from(
        written.join(
            WebhookEndpoint.__table__,
            and_(
                endpoint.disabled.is_(False), _subscribed_pg(endpoint.event_types, written.c.type)
            ),
        )
    )
    columns = [
        "endpoint_id",
        "event_id",
        "event_type",
        "body",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    ]
    return insert(WebhookDelivery).from_select(columns, rows)


async def enabled_endpoints(session: AsyncSession) -> list[tuple[str, list[str] | None]]:
    """(id, event_types) of every enabled endpoint."""
    return await session.run_sync(lambda s: enabled_endpoints_sync(s.connection()))


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Queue outbox rows in the session's transaction."""
    if rows:
        await session.execute(insert(WebhookDelivery), list(rows))


async def count_endpoints_locked(session: AsyncSession) -> int:
    """How many endpoints there are, with no other endpoint created until this transaction
    ends: two creates at the limit's edge must not both see room for one more.

    SHARE ROW EXCLUSIVE conflicts with itself and with row changes to the table, not with the
    row locks the worker and the outbox take (a send in flight never delays a create). SQLite
    has taken its one write lock at BEGIN IMMEDIATE already.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE webhook_endpoint IN SHARE ROW EXCLUSIVE MODE"))
    count = await session.scalar(select(func.count()).select_from(WebhookEndpoint))
    return int(count or 0)


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint | None:
    return await session.get(WebhookEndpoint, endpoint_id)


async def list_endpoints(
    session: AsyncSession, cursor: str | None, limit: int
) -> list[WebhookEndpoint]:
    stmt = keyset(
        select(WebhookEndpoint), WebhookEndpoint.created_at, WebhookEndpoint.id, cursor, limit
    )
    return list((await session.scalars(stmt)).all())


async def list_attempts(
    session: AsyncSession, endpoint_id: str, cursor: str | None, limit: int
) -> list[WebhookAttempt]:
    stmt = keyset(
        select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id),
        WebhookAttempt.at,
        WebhookAttempt.id,
        cursor,
        limit,
    )
    return list((await session.scalars(stmt)).all())


async def get_event(session: AsyncSession, event_id: str) -> Event | None:
    return await session.get(Event, event_id)


async def any_delivery_of(session: AsyncSession, event_id: str) -> WebhookDelivery | None:
    """A delivery of this event (for events that are no account's, kept only here)."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.event_id == event_id).limit(1)
    return await session.scalar(stmt)


async def due_endpoints(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    """Enabled endpoints whose oldest pending delivery is due, most overdue first.

    Only the head of each endpoint's queue counts: a later event never overtakes an earlier
    one that is waiting for its retry. One index probe per endpoint (the partial index on
    pending rows), however long a queue has grown behind a failing endpoint.
    """
    head_due = (
        select(WebhookDelivery.next_attempt_at)
        .where(
            WebhookDelivery.endpoint_id == WebhookEndpoint.id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        .order_by(WebhookDelivery.id)
        .limit(1)
        .correlate(WebhookEndpoint)
        .scalar_subquery()
    )
    stmt = (
        select(WebhookEndpoint.id)
        .where(WebhookEndpoint.disabled.is_(False), head_due <= now)
        .order_by(head_due, WebhookEndpoint.id)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def claim_head(
    session: AsyncSession, endpoint_id: str
) -> tuple[WebhookEndpoint, WebhookDelivery] | None:
    """The enabled endpoint, locked for this worker, and its oldest pending delivery.

    None if another worker holds the endpoint, or it has nothing pending. Two statements, the
    endpoint first: one statement that locked both rows with SKIP LOCKED could pass over the
    head while another worker still held the endpoint, find the endpoint free a row later,
    and send a later event first. Once this worker holds the endpoint, no other sends to it,
    and the head is read in a snapshot that sees every earlier send's commit.

    FOR NO KEY UPDATE, not FOR UPDATE: the outbox's inserts take a KEY SHARE lock on the
    endpoint row (the foreign key), and must not wait for a send in flight to finish. The
    delivery row is locked too, so that a delivery another transaction is changing (one being
    deleted with its endpoint) is read as it ends up.
    """
    endpoint = await session.scalar(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.disabled.is_(False))
        .with_for_update(skip_locked=True, key_share=True)
        .execution_options(populate_existing=True)
    )
    if endpoint is None:
        return None
    head = await session.scalar(_head(endpoint_id).with_for_update(key_share=True))
    return None if head is None else (endpoint, head)


def _head(endpoint_id: str) -> Select[WebhookDelivery]:
    return (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        .order_by(WebhookDelivery.id)
        .limit(1)
        .execution_options(populate_existing=True)
    )


async def head_delivery(session: AsyncSession, endpoint_id: str) -> WebhookDelivery | None:
    """The endpoint's oldest pending delivery."""
    return await session.scalar(_head(endpoint_id))


async def queue_stats(session: AsyncSession) -> tuple[int, datetime | None]:
    """Pending deliveries to enabled endpoints, and when the oldest of them was queued."""
    stmt = (
        select(func.count(), func.min(WebhookDelivery.created_at))
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookEndpoint.disabled.is_(False),
        )
    )
    count, oldest = (await session.execute(stmt)).one()
    return int(count), oldest
