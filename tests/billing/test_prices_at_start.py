"""R18: ``seats serve`` refuses to start with prices whose amounts cannot fit the ledger's
column, or with ``SEATS_PRICES`` no longer naming a currency an account uses (the plans in
it could then neither be priced nor renewed)."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.live import LiveServer


def refused(database_url: str, **env: str) -> str:
    """Start ``seats serve`` with ``env``; it must exit on its own. What it said on stderr."""
    server = LiveServer(database_url, workers=1, **env)
    with pytest.raises(RuntimeError, match="server exited with") as exited:
        server.start()
    server.stop()
    return str(exited.value)


def test_r18_serve_refuses_a_price_whose_amounts_cannot_fit(database_url: str) -> None:
    said = refused(database_url, SEATS_PRICES='{"USD": 1900, "IRR": 1200000000}')
    assert "IRR" in said and "SEATS_PRICES" in said


async def test_r18_serve_refuses_prices_that_drop_a_currency_in_use(
    api: Api, database_url: str
) -> None:
    # The ``api`` fixture made acme and globex, both in USD (the default currency).
    said = refused(database_url, SEATS_PRICES='{"EUR": 1700}', SEATS_CURRENCY="EUR")
    assert "USD" in said and "SEATS_PRICES" in said
