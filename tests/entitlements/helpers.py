"""What the cache's PostgreSQL tests share."""

from __future__ import annotations

from typing import Any


async def unannounced(sql: Any, statement: str) -> None:
    """Change the database without a word to the caches: with ``session_replication_role =
    replica`` (superuser only) no trigger fires, so no notification is sent."""
    await sql(f"DO $$BEGIN SET LOCAL session_replication_role = replica; {statement}; END$$")
