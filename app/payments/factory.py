"""Builds the configured gateway (``SEATS_PAYMENTS_GATEWAY``, ``SEATS_PAYMENTS_URL``)."""

from __future__ import annotations

from app.payments.gateway import Gateway
from app.payments.http import HttpGateway
from app.payments.sandbox import SandboxGateway


def make_gateway(
    kind: str, url: str | None, *, connect_timeout: float, read_timeout: float
) -> Gateway:
    """``sandbox`` (in process) or ``http`` (the platform's payments service at ``url``)."""
    if kind == "sandbox":
        return SandboxGateway()
    if kind == "http":
        if not url:
            raise ValueError("the http payments gateway needs a URL (SEATS_PAYMENTS_URL)")
        return HttpGateway(url, connect_timeout=connect_timeout, read_timeout=read_timeout)
    raise ValueError(f"unknown payments gateway {kind!r}: expected 'sandbox' or 'http'")
