"""The billing run from the outside: real `seats billing run` processes (as cron starts them)
charging through the ``http`` gateway a real loopback payments server, on this test's database.

The seed, the payments server and the process runner are ``bench/billing_fixture.py``, the
same code `make bench-billing` measures with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from bench.billing_fixture import (
    LoopbackPayments,
    RunResult,
    billing_env,
    captured,
    paid_by_charge,
    run_billing,
    seats_verify,
)
from tests.conftest import Api, make_settings, seed_directory

RunBilling = Callable[..., RunResult]


@pytest.fixture
def payments() -> Iterator[LoopbackPayments]:
    """The payments server, answering at once (these tests are about correctness, not pace)."""
    with LoopbackPayments(latency=0.0) as server:
        yield server


@pytest.fixture
def billing_run(database_url: str, payments: LoopbackPayments) -> RunBilling:
    """``billing_run(SEATS_X="v", ...)``: one `seats billing run` process; its result."""

    def run(**env: str) -> RunResult:
        (result,) = run_billing([billing_env(database_url, payments.url, **env)])
        return result

    return run


@pytest.fixture
async def billing_api(database_url: str, payments: LoopbackPayments) -> AsyncIterator[Api]:
    """The API in process over ASGI, charging through the same payments server; seeded like
    the ``api`` fixture (clock at 2026-11-21 12:00 UTC; acme with alice, bob, carol)."""
    settings = make_settings(database_url, payments_gateway="http", payments_url=payments.url)
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield await seed_directory(Api(client))
    finally:
        await app.state.gateway.aclose()
        await app.state.db.dispose()


def assert_ran_clean(result: RunResult) -> dict[str, Any]:
    """The run exited 0 with a JSON report; the report."""
    assert result.returncode == 0, result.describe()
    assert result.report is not None, result.describe()
    return result.report


async def assert_captured_equals_paid(database_url: str, payments: LoopbackPayments) -> None:
    """Each charge the payments server captured is one paid invoice of that amount, and back."""
    assert captured(payments) == await paid_by_charge(database_url)


def assert_verify_passes(database_url: str) -> None:
    """`seats verify` finds every invariant holding."""
    result = seats_verify(database_url)
    assert result.returncode == 0, result.stdout + result.stderr
