"""Keyset pagination, newest first: ``{"data": [...], "next_cursor": ...}`` (SPEC §4)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from app.errors import ValidationFailed

LimitQuery = Annotated[int, Query(ge=1, le=100, description="Page size")]
CursorQuery = Annotated[
    str | None,
    Query(max_length=200, description="The next_cursor of the previous page"),
]


_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # the ids the lists are keyed by

T = TypeVar("T")
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


def encode_cursor(at: datetime, key: str) -> str:
    raw = json.dumps([at.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, key = json.loads(raw)
        when = datetime.fromisoformat(at)
        # A forged cursor must not reach the query: a naive time cannot be compared with the
        # stored UTC times, and a key that is not an id may not even be storable text.
        if when.tzinfo is None or not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError("not a cursor of this service")
        return when.astimezone(UTC), key
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ValidationFailed(
            "Invalid cursor.", errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}]
        ) from exc


def keyset(
    stmt: S,
    at_col: InstrumentedAttribute[datetime],
    key_col: InstrumentedAttribute[str],
    cursor: str | None,
    limit: int,
) -> S:
    """Newest first by (time, id); resumes after the cursor without OFFSET."""
    if cursor is not None:
        at, key = decode_cursor(cursor)
        # A row comparison, not "at < x OR (at = x AND id < y)": PostgreSQL turns it into an
        # index range that starts at the cursor, where the OR form makes it walk and discard
        # every newer row first (a page 9,000 agents deep cost 2.5x the first one).
        stmt = stmt.where(tuple_(at_col, key_col) < tuple_(at, key))
    return stmt.order_by(at_col.desc(), key_col.desc()).limit(limit + 1)


def next_cursor(
    rows: list[Any], limit: int, position: Callable[[Any], tuple[datetime, str]]
) -> tuple[list[Any], str | None]:
    """Trim the extra row fetched to learn whether a next page exists, and point at it."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*position(rows[-1]))
