"""Endpoint URLs that could break the worker or turn a send inward, and the endpoint limit.

Each test is named after the SPEC §8 rule it holds: a saved URL is one the worker can send to;
a send that fails for any reason is a failed attempt on the retry schedule; no address on the
service's own network, however it is written; and a bounded fan-out per event.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from app.webhooks.worker import Worker
from tests.conftest import Api, problem
from tests.webhooks.conftest import create_endpoint, parse, until_attempts
from tests.webhooks.helpers import make_events

BASE = "/internal/v1/webhooks/endpoints"

# Ports no connection can use; the first is the issue's.
BAD_PORTS = ["https://1.2.3.4:99999/hook", "https://1.2.3.4:0/hook", "https://1.2.3.4:65536/"]
# Names IDNA refuses: the worker could never resolve them.
BAD_NAMES = ["https://xn--zz/", "https://xn--/", "https://xn--ls8h.la/"]
# IPv6 spellings of inward IPv4 addresses, and the site-local range.
INWARD_IPV6 = [
    "https://[::7f00:1]/",  # IPv4-compatible 127.0.0.1
    "https://[::a00:1]/",  # IPv4-compatible 10.0.0.1
    "https://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated 169.254.169.254
    "https://[::ffff:0:7f00:1]/",  # IPv4-translated 127.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 well-known prefix: 169.254.169.254
    "https://[64:ff9b::a00:1]/",  # NAT64 well-known prefix: 10.0.0.1
    "https://[64:ff9b:1::a00:1]/",  # NAT64 local-use prefix
    "https://[64:ff9b:1:a00:1::]/",  # NAT64 local-use, the IPv4 at the /48 position
    "https://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
    "https://[2002:a00:1::1]/",  # 6to4 of 10.0.0.1
    "https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",  # Teredo, client 10.0.0.1
    "https://[2001:0:a00:1::1]/",  # Teredo, server 10.0.0.1
    "https://[fec0::1]/",  # site-local (deprecated, still routed on some networks)
    "https://[fec0:1::a9fe:a9fe]/",
]


@pytest.mark.parametrize("url", BAD_PORTS + BAD_NAMES + INWARD_IPV6)
async def test_webhook_url_the_worker_cannot_use_is_refused_at_create(api: Api, url: str) -> None:
    r = await api.client.post(BASE, json={"url": url}, headers=api.as_service())
    problem(r, 422, "webhook_url_refused")


@pytest.mark.parametrize("url", BAD_PORTS + BAD_NAMES + INWARD_IPV6)
async def test_webhook_url_the_worker_cannot_use_is_refused_at_patch(api: Api, url: str) -> None:
    ep = await create_endpoint(api, "http://127.0.0.1:9/a")
    r = await api.client.patch(f"{BASE}/{ep['id']}", json={"url": url}, headers=api.as_service())
    problem(r, 422, "webhook_url_refused")
    r = await api.client.get(f"{BASE}/{ep['id']}", headers=api.as_service())
    assert r.json()["url"] == "http://127.0.0.1:9/a"


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/",
        "https://[2606:4700::1111]/",
        "https://[64:ff9b::808:808]/",  # NAT64 of 8.8.8.8: public, allowed
        "https://[2002:808:808::1]/",  # 6to4 of 8.8.8.8
        "https://1.2.3.4:8443/hook",
        "https://1.2.3.4:65535/hook",
    ],
)
async def test_webhook_public_urls_are_still_accepted(api: Api, url: str) -> None:
    r = await api.client.post(BASE, json={"url": url}, headers=api.as_service())
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        ("url", "https://1.2.3.4:99999/hook", "refused:"),  # saved before ports were checked
        ("url", "https://xn--zz/", "refused:"),  # saved before IDNA errors were caught
        ("url", "https://[64:ff9b::a9fe:a9fe]/", "refused:"),  # before NAT64 was unwrapped
        ("secret", "whsec_!!!", "error:"),  # a secret nothing can sign with
    ],
)
async def test_webhook_a_send_that_fails_in_any_way_is_a_failed_attempt_on_the_schedule(
    api: Api, worker: Worker, sql: Any, column: str, value: str, error: str
) -> None:
    """Each row here breaks a rule the service now enforces at save, or is damaged: the send
    refuses it, and whatever fails in a send is one failed attempt on the retry schedule,
    never a loop that tries the head again at once."""
    ep = await create_endpoint(api, "http://127.0.0.1:9/a")
    await sql(
        f"UPDATE webhook_endpoint SET {column} = :value WHERE id = :id", value=value, id=ep["id"]
    )
    await make_events(api, 2)
    (attempt,) = await until_attempts(api, ep["id"], 1, timeout=20)
    assert attempt["status_code"] is None and attempt["error"].startswith(error)
    assert parse(attempt["next_attempt_at"]) == parse(attempt["at"]) + timedelta(seconds=5)
    # Not retried before its time: the test clock stands still, so one attempt stays one.
    await asyncio.sleep(1)
    rows = await sql(
        "SELECT attempts, status FROM webhook_delivery WHERE endpoint_id = :id ORDER BY id",
        id=ep["id"],
    )
    assert [tuple(r) for r in rows] == [(1, "pending"), (0, "pending")]
    failing = await sql("SELECT failing_since FROM webhook_endpoint WHERE id = :id", id=ep["id"])
    assert failing[0][0] is not None  # counts toward the five days that disable it


@pytest.mark.settings(webhook_max_endpoints=2)
async def test_webhook_endpoints_are_bounded_by_the_limit(api: Api) -> None:
    first = await create_endpoint(api, "http://127.0.0.1:9/a")
    await create_endpoint(api, "http://127.0.0.1:9/b")
    r = await api.client.post(BASE, json={"url": "http://127.0.0.1:9/c"}, headers=api.as_service())
    body = problem(r, 409, "webhook_endpoint_limit_reached")
    assert body["limit"] == 2
    # A disabled endpoint still counts: re-enabling it must not pass the limit.
    r = await api.client.patch(
        f"{BASE}/{first['id']}", json={"disabled": True}, headers=api.as_service()
    )
    assert r.status_code == 200
    r = await api.client.post(BASE, json={"url": "http://127.0.0.1:9/c"}, headers=api.as_service())
    problem(r, 409, "webhook_endpoint_limit_reached")
    assert (await api.client.delete(f"{BASE}/{first['id']}", headers=api.as_service())).is_success
    await create_endpoint(api, "http://127.0.0.1:9/c")


@pytest.mark.settings(webhook_max_endpoints=3)
async def test_webhook_endpoint_limit_holds_under_concurrent_creates(api: Api, sql: Any) -> None:
    async def create(i: int) -> int:
        r = await api.client.post(
            BASE, json={"url": f"http://127.0.0.1:9/{i}"}, headers=api.as_service()
        )
        return r.status_code

    codes = await asyncio.gather(*(create(i) for i in range(8)))
    assert sorted(codes) == [201] * 3 + [409] * 5
    assert (await sql("SELECT COUNT(*) FROM webhook_endpoint"))[0][0] == 3
