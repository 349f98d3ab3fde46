"""``INSERT ... ON CONFLICT DO NOTHING``, in the dialect of the database at hand.

A claim (an idempotency key, a purchase's invoice for its request) is one statement that
either inserts the row or, by returning nothing, reports that it exists: no read first, and
no unique violation to catch and retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite


def insert_new(
    table: Any, dialect: str, values: Mapping[str, Any], *, on: Sequence[Any] | None = None
) -> Insert:
    """INSERT ``values`` unless a row with the same key exists: the primary key, or the
    unique columns ``on``, whose conflict alone is ignored (any other still raises)."""
    if dialect == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=on)
    return sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=on)
