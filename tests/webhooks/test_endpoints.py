"""The endpoints API (service token): create, list, get, update, delete, rotate, errors."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import Api, auth, problem, user_token
from tests.webhooks.conftest import create_endpoint

BASE = "/internal/v1/webhooks/endpoints"


async def test_create_shows_the_secret_once(api: Api) -> None:
    created = await create_endpoint(
        api, "http://127.0.0.1:9/hook", event_types=["seats.purchased"], description="billing"
    )
    assert created["id"].startswith("whe_")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["event_types"] == ["seats.purchased"]
    assert (created["disabled"], created["disabled_reason"]) == (False, None)
    r = await api.client.get(f"{BASE}/{created['id']}", headers=api.as_service())
    assert r.status_code == 200
    assert "secret" not in r.json()
    listed = await api.client.get(BASE, headers=api.as_service())
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["data"]] == [created["id"]]
    assert "secret" not in listed.json()["data"][0]


async def test_list_pages_newest_first(api: Api) -> None:
    ids = [(await create_endpoint(api, f"http://127.0.0.1:9/{i}"))["id"] for i in range(3)]
    r = await api.client.get(f"{BASE}?limit=2", headers=api.as_service())
    page = r.json()
    assert [e["id"] for e in page["data"]] == ids[::-1][:2]
    r = await api.client.get(
        f"{BASE}?limit=2&cursor={page['next_cursor']}", headers=api.as_service()
    )
    assert [e["id"] for e in r.json()["data"]] == [ids[0]]
    assert r.json()["next_cursor"] is None


async def test_patch_changes_only_what_it_names(api: Api) -> None:
    ep = await create_endpoint(api, "http://127.0.0.1:9/a", event_types=["agent.assigned"])
    url = f"{BASE}/{ep['id']}"
    r = await api.client.patch(url, json={"disabled": True}, headers=api.as_service())
    assert r.status_code == 200, r.text
    assert (r.json()["disabled"], r.json()["disabled_reason"]) == (True, "manual")
    assert r.json()["event_types"] == ["agent.assigned"]
    r = await api.client.patch(
        url,
        json={"url": "http://127.0.0.1:9/b", "event_types": None, "disabled": False},
        headers=api.as_service(),
    )
    body = r.json()
    assert (body["url"], body["event_types"], body["disabled"]) == (
        "http://127.0.0.1:9/b",
        None,
        False,
    )


async def test_delete_then_not_found(api: Api) -> None:
    ep = await create_endpoint(api, "http://127.0.0.1:9/a")
    url = f"{BASE}/{ep['id']}"
    assert (await api.client.delete(url, headers=api.as_service())).status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        kwargs = {"json": {"disabled": True}} if method == "PATCH" else {}
        r = await api.client.request(method, url, headers=api.as_service(), **kwargs)
        problem(r, 404, "webhook_endpoint_not_found")
    r = await api.client.post(f"{url}/rotate-secret", headers=api.as_service())
    problem(r, 404, "webhook_endpoint_not_found")
    problem(
        await api.client.get(f"{url}/deliveries", headers=api.as_service()),
        404,
        "webhook_endpoint_not_found",
    )


async def test_redeliver_an_unknown_event(api: Api) -> None:
    r = await api.client.post(
        f"/internal/v1/webhooks/events/evt_{'0' * 26}/redeliver", headers=api.as_service()
    )
    problem(r, 404, "event_not_found")


@pytest.mark.parametrize(
    "url",
    [
        "http://billing.example.com/hook",  # plain http to a host not allowed
        "https://10.0.0.8/hook",  # private
        "https://192.168.1.1/hook",
        "https://172.16.0.1/hook",
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://127.0.0.2/hook",  # loopback, but not the allowed 127.0.0.1
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",  # a private IPv4 address in IPv6 clothing
        "https://0.0.0.0/hook",
        "https://2130706433/hook",  # 127.0.0.1 written as one number: caught by resolving it
        "https://0x7f.1/hook",
        "https://localhost/hook",
        "https://printer.local/hook",
        "https://user:pw@billing.example.com/hook",
        "ftp://billing.example.com/hook",
        "not a url at all",
    ],
)
async def test_refused_urls(api: Api, url: str) -> None:
    r = await api.client.post(BASE, json={"url": url}, headers=api.as_service())
    if r.status_code == 422 and r.json()["code"] == "validation_error":
        return  # refused by the schema already (no spaces in a URL)
    problem(r, 422, "webhook_url_refused")


async def test_a_name_that_resolves_inward_is_refused(api: Api) -> None:
    host = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, 443)}
    except OSError:
        pytest.skip("this machine's own name does not resolve")
    assert addresses  # this machine's name resolves to its own (non-public) addresses
    r = await api.client.post(BASE, json={"url": f"https://{host}/hook"}, headers=api.as_service())
    problem(r, 422, "webhook_url_refused")


async def test_patch_refuses_a_private_url_too(api: Api) -> None:
    ep = await create_endpoint(api, "http://127.0.0.1:9/a")
    r = await api.client.patch(
        f"{BASE}/{ep['id']}", json={"url": "https://10.0.0.1/"}, headers=api.as_service()
    )
    problem(r, 422, "webhook_url_refused")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": "http://127.0.0.1:9/a", "event_types": []},
        {"url": "http://127.0.0.1:9/a", "event_types": ["Not A Type"]},
        {"url": "http://127.0.0.1:9/a", "secret": "whsec_mine"},
        {"url": "http://127.0.0.1:9/a\x00"},
    ],
)
async def test_bad_bodies(api: Api, body: dict[str, object]) -> None:
    r = await api.client.post(BASE, json=body, headers=api.as_service())
    problem(r, 422, "validation_error")


async def test_users_may_not_manage_webhooks(api: Api) -> None:
    alice = auth(user_token("acme", "alice"))
    problem(
        await api.client.post(BASE, json={"url": "http://127.0.0.1:9/a"}, headers=alice),
        403,
        "service_token_required",
    )
    problem(await api.client.get(BASE), 401, "unauthenticated")
