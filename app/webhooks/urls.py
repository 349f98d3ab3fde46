"""Which endpoint URLs the service may call: no SSRF into the service's own network.

A URL must be ``https`` and its host must resolve only to public addresses, unless the host
is named in ``SEATS_WEBHOOK_ALLOW_HOSTS`` (tests and local receivers). The check runs when an
endpoint is saved and again at every send, on the addresses DNS gives then: a name that
resolved outward when it was saved may resolve inward later.

An IPv6 address is public only if every IPv4 address it carries is: on an IPv6-only network
with NAT64, ``64:ff9b::a9fe:a9fe`` *is* 169.254.169.254. Every standard embedding is unwrapped
(IPv4-mapped and -compatible, SIIT's translated form, the NAT64 well-known prefix, 6to4 and
both addresses of Teredo); the NAT64 local-use prefix (its IPv4 may sit at any of six
positions) and the deprecated site-local range are refused whole.

Anything the worker could not send to is refused at save, with ``webhook_url_refused``: a port
outside 1-65535, a name IDNA cannot encode or decode.
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


# IPv6 prefixes whose last 32 bits are an IPv4 address (RFC 4291, 6052, 7915).
_IPV4_IN_LOW_BITS = tuple(
    ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)
# RFC 8215: translated by the local network to an IPv4 address of its own choosing.
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (none for a plain IPv6 address)."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    found = []
    if any(address in prefix for prefix in _IPV4_IN_LOW_BITS):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # the relay server's and the client's
    return found


def is_public(address: IPAddress) -> bool:
    """True for an address on the public internet (not private, loopback, link-local, ...),
    however it is written: an IPv6 address that carries an IPv4 one is judged on both."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address.is_site_local or address in _NAT64_LOCAL_USE:
            return False
        if not all(is_public(inner) for inner in embedded_ipv4(address)):
            return False
    return address.is_global and not address.is_multicast


def _host(url: httpx.URL) -> str:
    return url.host.lower().rstrip(".")


def check_url(raw: str, allow: Collection[str]) -> httpx.URL:
    """The parsed URL, or ``WebhookUrlRefused`` when it breaks a rule that needs no DNS."""
    try:
        url = httpx.URL(raw)
        # Reading the host decodes IDNA: a malformed A-label raises here (a UnicodeError).
        host = _host(url) if url.host else ""
    except (httpx.InvalidURL, ValueError) as exc:
        raise WebhookUrlRefused("The URL cannot be parsed.") from exc
    if url.scheme not in ("https", "http") or not host:
        raise WebhookUrlRefused("The URL must be an absolute https URL.")
    if url.userinfo:
        raise WebhookUrlRefused("The URL may not carry credentials.")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise WebhookUrlRefused(f"The port {url.port} is not a TCP port (1-65535).")
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


async def resolve(raw: str, allow: Collection[str]) -> Target:
    """Check the stored URL again, resolve its host now, and refuse it if any address it
    names is not public."""
    url = check_url(raw, allow)
    host = _host(url)
    if host in allow:
        return Target(url, None)
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
