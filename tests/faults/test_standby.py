"""``/readyz`` on a server in recovery (SPEC §7, Production topology: Connections): a streaming
standby of the test cluster (tests/standby.py) answers every read, its schema is at head, and
yet the service must not be put in a load balancer's rotation against it: writes would fail.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.main import create_app
from tests.conftest import PG_URL, make_settings, problem
from tests.standby import Standby

pytestmark = pytest.mark.skipif(not PG_URL, reason="a standby needs PostgreSQL")


@pytest.fixture
def standby(migrated_template: str) -> Iterator[Standby]:
    """A standby of the migrated test database."""
    with Standby(migrated_template) as server:
        yield server


@pytest.fixture
async def on_standby(standby: Standby) -> AsyncIterator[httpx.AsyncClient]:
    """The app pointed at the standby. Made here, before the test: the app configures the
    logging when it is made, and the test's log capture is installed after the fixtures."""
    application = create_app(make_settings(standby.url()))
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await application.state.gateway.aclose()
        await application.state.db.dispose()


async def test_readyz_fails_on_a_server_in_recovery_and_logs_why(
    on_standby: httpx.AsyncClient, standby: Standby, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        r = await on_standby.get("/readyz")
    body = problem(r, 503, "not_ready")
    assert "recovery" in body["detail"]
    assert r.headers["retry-after"]
    [line] = [rec.getMessage() for rec in caplog.records if "recovery" in rec.getMessage()]
    assert "\n" not in line
    # Promoted, the same process is ready on it without a restart.
    standby.promote()
    r = await on_standby.get("/readyz")
    assert r.status_code == 200, r.text
