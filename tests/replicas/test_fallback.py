"""A standby that cannot be reached: the reads it would serve go to the primary, never a 500
(SEATS_DATABASE_READ_URL names a loopback port nothing listens on)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import NOW, Api, postgres_only, service_token, user_token
from tests.live import LiveServer, free_port

pytestmark = postgres_only


@pytest.fixture(scope="module")
def server(migrated_template: str) -> Iterator[LiveServer]:
    nowhere = make_url(migrated_template).set(host="127.0.0.1", port=free_port())
    with LiveServer(
        migrated_template,
        workers=1,
        SEATS_DATABASE_READ_URL=nowhere.render_as_string(hide_password=False),
    ) as live:
        yield live


async def test_reads_go_to_the_primary_when_the_standby_is_unreachable(
    server: LiveServer, database_url: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        api = Api(client)
        await api.set_clock(NOW)
        assert (await api.put_account("acme")).status_code == 201
        for user_id, role in (("alice", "primary_admin"), ("bob", "user")):
            assert (await api.put_user("acme", user_id, role)).status_code == 201
        assert (await api.start_trial()).status_code == 201
        assert (await api.assign("bob")).status_code == 201
        await asyncio.sleep(0.3)  # the listener has positioned the notifications
        alice = {"Authorization": f"Bearer {user_token('acme', 'alice')}"}
        base = "/v1/accounts/acme/conversations"
        for n in range(3):
            r = await client.get(
                f"{base}/agents/bob",
                headers={"Authorization": f"Bearer {service_token(f'inbox-{n}')}"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["active"] is True
            for path in ("", "/agents", "/users", "/invoices", "/events"):
                r = await client.get(f"{base}{path}", headers=alice)
                assert r.status_code == 200, (path, r.text)
        metrics = (await client.get("/metrics")).text
    assert 'seats_replica_reads_total{outcome="primary_failed"}' in metrics
    assert "standby read failed, reading the primary" in server.stderr_text()
