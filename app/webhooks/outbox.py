"""The outbox: every audit event queues its deliveries in the transaction that writes it.

The ledger stays a leaf that knows nothing of webhooks: ``install`` registers a flush hook on
SQLAlchemy's ``Session`` (``create_app`` calls it). When a flush inserts ``Event`` rows, the
hook inserts one ``webhook_delivery`` per enabled endpoint subscribed to the event's type, on
the same connection and in the same transaction. So a committed event always has its rows
(a crash after the commit loses nothing) and a rolled-back one has none (nothing is sent).

Events written in SQLAlchemy Core, without a flush, queue theirs through the two Core entry
points instead: ``queue`` (the hook's own code, for a connection; one read of the endpoints
and one insert) and ``queue_statement``, the same rows as one ``INSERT ... SELECT`` that a
PostgreSQL statement writing the event can carry as a CTE, so that the event and its
deliveries still cost one round trip (the seat assignments do this).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, FromClause, Insert
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, UOWTransaction

from app.ledger.models import Event
from app.webhooks import repository
from app.webhooks.models import DeliveryStatus


def subscribed(event_types: list[str] | None, event_type: str) -> bool:
    """Does an endpoint with these ``event_types`` (None: all) want this event?"""
    return event_types is None or event_type in event_types


def iso(at: datetime) -> str:
    """UTC time as the API shows it: ``2026-11-21T12:00:00Z``."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render(
    event_id: str, type: str, account_id: str | None, at: datetime, data: dict[str, Any]
) -> str:
    """The webhook body (SPEC §8), as the exact text that is signed and sent."""
    body = {"id": event_id, "type": type, "account_id": account_id, "at": iso(at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def delivery_rows(
    endpoints: list[tuple[str, list[str] | None]],
    *,
    event_id: str,
    event_type: str,
    body: str,
    at: datetime,
) -> list[dict[str, Any]]:
    """The outbox rows of one event: one per subscribed endpoint, due at once."""
    return [
        {
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event_type": event_type,
            "body": body,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        }
        for endpoint_id, types in endpoints
        if subscribed(types, event_type)
    ]


class EventRecord(Protocol):
    """What the outbox reads of an event: an ``Event`` row, or one written in Core."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def account_id(self) -> str | None: ...
    @property
    def at(self) -> datetime: ...
    @property
    def data(self) -> dict[str, Any]: ...


def _after_flush(session: Session, _: UOWTransaction) -> None:
    # ``session.new`` still lists what this flush inserted (SQLAlchemy's after_flush).
    events = [obj for obj in session.new if isinstance(obj, Event)]
    if events:
        queue(session.connection(), events)


def queue(conn: Connection, events: Sequence[EventRecord]) -> None:
    """Queue the deliveries of ``events``, just written on ``conn``, in its transaction."""
    if not events:
        return
    endpoints = repository.enabled_endpoints_sync(conn)
    if not endpoints:
        return
    # Insertion order is sending order: sort by the events' own (time, id) order.
    rows = []
    for ev in sorted(events, key=lambda e: (e.at, e.id)):
        body = render(ev.id, ev.type, ev.account_id, ev.at, ev.data)
        rows += delivery_rows(endpoints, event_id=ev.id, event_type=ev.type, body=body, at=ev.at)
    if rows:
        repository.insert_deliveries_sync(conn, rows)


def queue_statement(written: FromClause) -> Insert:
    """The deliveries of one event as a PostgreSQL ``INSERT ... SELECT``, for a CTE; its
    parameters are ``queue_parameters(event)``. Built once, run with each event's.

    ``written`` is the CTE that inserted the event, returning its ``id``, ``type`` and
    ``at``: no row (the event was not written after all) queues nothing. The endpoints are
    chosen in SQL by the same rule as ``subscribed``.
    """
    return repository.deliveries_of_written_event(written)


def queue_parameters(event: EventRecord) -> dict[str, Any]:
    """The parameters of ``queue_statement`` for ``event``: the body every endpoint is sent."""
    body = render(event.id, event.type, event.account_id, event.at, event.data)
    return {"delivery_body": body}


def install() -> None:
    """Register the outbox hook on every session (idempotent)."""
    if not sa_event.contains(Session, "after_flush", _after_flush):
        sa_event.listen(Session, "after_flush", _after_flush)
