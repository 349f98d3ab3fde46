"""Which endpoint URLs the service may call: no SSRF into the service's own network.

A URL must be ``https`` and its host must resolve only to public addresses, unless the host
is named in ``SEATS_WEBHOOK_ALLOW_HOSTS`` (tests and local receivers). The check runs when an
endpoint is saved and again at every send, on the addresses DNS gives then: a name that
resolved outward when it was saved may resolve inward later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass

import httpx

from app.errors import WebhookUrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def allowed_hosts(setting: str) -> frozenset[str]:
    """``SEATS_WEBHOOK_ALLOW_HOSTS``: host names or addresses, separated by commas."""
    return frozenset(h.strip().lower() for h in setting.split(",") if h.strip())


def is_public(address: IPAddress) -> bool:
    """True for an address on the public internet (not private, loopback, link-local, ...)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _host(url: httpx.URL) -> str:
    return url.host.lower().rstrip(".")


def check_url(raw: str, allow: Collection[str]) -> httpx.URL:
    """The parsed URL, or ``WebhookUrlRefused`` when it breaks a rule that needs no DNS."""
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError) as exc:
        raise WebhookUrlRefused("The URL cannot be parsed.") from exc
    if url.scheme not in ("https", "http") or not url.host:
        raise WebhookUrlRefused("The URL must be an absolute https URL.")
    if url.userinfo:
        raise WebhookUrlRefused("The URL may not carry credentials.")
    host = _host(url)
    if host in allow:
        return url
    if url.scheme != "https":
        raise WebhookUrlRefused(f"The URL must use https (host {host} is not allowed plain http).")
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise WebhookUrlRefused(f"The host {host} is not on the public internet.")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not is_public(literal):
        raise WebhookUrlRefused(f"The address {host} is not on the public internet.")
    return url


@dataclass(frozen=True)
class Target:
    """Where a send goes: the URL, and the vetted address to connect to (None: as named)."""

    url: httpx.URL
    address: str | None


async def _addresses(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def _refuse_inward(host: str, addresses: list[IPAddress]) -> None:
    # Every address, not just the first: a connection could go to any of them.
    bad = [str(a) for a in addresses if not is_public(a)]
    if bad:
        raise WebhookUrlRefused(f"The host {host} resolves to a non-public address ({bad[0]}).")


async def screen(raw: str, allow: Collection[str], dns_timeout: float = 2.0) -> str:
    """Check a URL being saved: the static rules, and its addresses if it resolves now.

    A name that does not resolve yet is accepted (DNS may be set up after the endpoint):
    every send resolves it again and refuses it then if it points inward.
    """
    url = check_url(raw, allow)
    host = _host(url)
    if host not in allow:
        try:
            async with asyncio.timeout(dns_timeout):
                addresses = await _addresses(host, url.port or 443)
        except (OSError, TimeoutError, UnicodeError):
            addresses = []
        _refuse_inward(host, addresses)
    return str(url)


async def resolve(url: httpx.URL, allow: Collection[str]) -> Target:
    """Resolve the host now and refuse it if any address it names is not public."""
    host = _host(url)
    if host in allow:
        return Target(url, None)
    check_url(str(url), allow)
    try:
        addresses = await _addresses(host, url.port or 443)
    except (OSError, UnicodeError) as exc:
        raise WebhookUrlRefused(f"The host {host} does not resolve.") from exc
    if not addresses:
        raise WebhookUrlRefused(f"The host {host} has no address.")
    _refuse_inward(host, addresses)
    return Target(url, str(addresses[0]))


def pinned_request(target: Target) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The URL to connect to, the extra headers and the httpx extensions for ``target``.

    The connection goes to the address that was checked, never to a second DNS answer (DNS
    rebinding); the Host header and TLS SNI keep the name, so certificates verify as usual.
    """
    if target.address is None:
        return target.url, {}, {}
    host = target.address
    pinned = target.url.copy_with(host=host)
    headers = {"Host": target.url.netloc.decode("ascii")}
    return pinned, headers, {"sni_hostname": _host(target.url)}
