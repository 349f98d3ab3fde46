"""The pure rules: the retry schedule, outcomes, address screening."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.errors import WebhookUrlRefused
from app.webhooks.schedule import (
    RETRY_DELAYS,
    Outcome,
    next_attempt_at,
    outcome_of,
    should_disable,
)
from app.webhooks.sender import failure
from app.webhooks.urls import Target, check_url, is_public, pinned_request

T0 = datetime(2026, 11, 21, tzinfo=UTC)


def test_the_schedule_is_the_standard_webhooks_one() -> None:
    assert [int(d.total_seconds()) for d in RETRY_DELAYS] == [
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        50400,
        72000,
        86400,
    ]
    assert next_attempt_at(1, T0) == T0 + timedelta(seconds=5)
    assert next_attempt_at(9, T0) == T0 + timedelta(hours=24)
    assert next_attempt_at(10, T0) is None


@pytest.mark.parametrize(
    ("status", "failed", "outcome"),
    [
        (200, 1, Outcome.DELIVERED),
        (204, 10, Outcome.DELIVERED),
        (299, 1, Outcome.DELIVERED),
        (301, 1, Outcome.FAILED),
        (410, 1, Outcome.GONE),
        (500, 9, Outcome.FAILED),
        (500, 10, Outcome.EXHAUSTED),
        (None, 1, Outcome.FAILED),
    ],
)
def test_outcomes(status: int | None, failed: int, outcome: Outcome) -> None:
    assert outcome_of(status, failed) is outcome


def test_disable_after_five_days() -> None:
    assert not should_disable(None, T0)
    assert not should_disable(T0, T0 + timedelta(days=5) - timedelta(seconds=1))
    assert should_disable(T0, T0 + timedelta(days=5))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("10.0.0.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
        # IPv6 forms that carry an IPv4 address are judged on it too.
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("::ffff:0:a9fe:a9fe", False),  # translated 169.254.169.254
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("64:ff9b:1::808:808", False),  # NAT64 local-use: refused whole
        ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, client 10.0.0.1
        ("fec0::1", False),  # site-local
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_allowed_hosts_may_use_http_and_private_addresses() -> None:
    assert check_url("http://127.0.0.1:8080/x", {"127.0.0.1"}).host == "127.0.0.1"
    with pytest.raises(WebhookUrlRefused):
        check_url("http://127.0.0.1:8080/x", set())


def test_a_pinned_request_keeps_the_name_for_host_and_tls() -> None:
    url, headers, extensions = pinned_request(
        Target(httpx.URL("https://hooks.example.com:8443/a?b=1"), "93.184.216.34")
    )
    assert str(url) == "https://93.184.216.34:8443/a?b=1"
    assert headers == {"Host": "hooks.example.com:8443"}
    assert extensions == {"sni_hostname": "hooks.example.com"}


def test_a_failure_reason_is_one_printable_line() -> None:
    answer = failure("refused:\x00 bad\nline" + "x" * 300)
    assert answer.status_code is None and answer.error is not None
    assert answer.error.startswith("refused:  bad line") and len(answer.error) == 200
