"""The agent-check cache's listener with a multi-host URL (SPEC §7, Failover): whatever the
order of the hosts, it listens on the one that takes writes, never on a standby.

The test cluster's primary and a streaming standby of it (tests/standby.py), named in both
orders with ``target_session_attrs=read-write``, the form the service's engine connects with.
A listener that kept one host only would sit on the standby (``cannot execute LISTEN during
recovery``) and the cache would never serve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from app.entitlements import AccessListener, EntitlementCache
from tests.conftest import PG_URL
from tests.standby import Standby, multi_host_url

pytestmark = pytest.mark.skipif(not PG_URL, reason="a standby needs PostgreSQL")

PATIENCE = 10.0


@pytest.fixture(scope="module")
def standby(migrated_template: str) -> Iterator[Standby]:
    with Standby(migrated_template) as server:
        yield server


@pytest.mark.parametrize("order", ["primary_first", "standby_first"])
async def test_the_listener_listens_on_the_primary_whatever_the_order_of_the_hosts(
    standby: Standby, migrated_template: str, order: str
) -> None:
    urls = [migrated_template, standby.url()]
    if order == "standby_first":
        urls.reverse()
    cache = EntitlementCache(ttl=5, max_entries=100)
    listener = AccessListener(multi_host_url(urls), cache, retry_seconds=0.1)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), PATIENCE)
        assert cache.serving
        primary: Any = await asyncpg.connect(migrated_template.replace("+asyncpg", ""))
        try:
            listening = await primary.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'seats-access' AND pid = $1",
                listener.backend_pid,
            )
        finally:
            await primary.close()
        assert listening == 1, "the listener's backend is not on the primary"
    finally:
        await listener.stop()
