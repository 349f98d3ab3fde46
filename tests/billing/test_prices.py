"""R13 and SPEC §3 "Prices": the seat price is configured per currency (``SEATS_PRICES``), and an
account may use only a configured currency (``422 unsupported_currency``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from app.config import Settings
from tests.conftest import SECRET, Api, make_settings, problem

PRICES = {"USD": 1900, "IDR": 300000}
Sql = Callable[..., Any]


def settings_from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings as ``seats serve`` reads them: from SEATS_* environment variables only."""
    for name in ("SEATS_PRICES", "SEATS_PRICE_MONTHLY", "SEATS_CURRENCY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEATS_JWT_SECRET", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


# --- settings -------------------------------------------------------------------------------


def test_r13_the_default_is_1900_usd(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_env(monkeypatch)
    assert settings.prices == {"USD": 1900}
    assert settings.price_for("USD") == 1900
    assert settings.price_for("IDR") is None


def test_r13_seats_prices_is_a_json_map_of_currency_to_minor_units(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from_env(monkeypatch, SEATS_PRICES='{"USD": 2500, "IDR": 300000}')
    assert settings.prices == {"USD": 2500, "IDR": 300000}
    assert settings.price_for("IDR") == 300000
    assert settings.price_for("USD") == 2500
    assert settings.price_for("EUR") is None
    assert settings.price_monthly == 2500  # the default currency's price, for older readers


def test_r13_legacy_price_monthly_still_prices_the_default_currency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from_env(monkeypatch, SEATS_PRICE_MONTHLY="2900")
    assert settings.prices == {"USD": 2900}
    settings = settings_from_env(
        monkeypatch, SEATS_PRICE_MONTHLY="4500", SEATS_CURRENCY="EUR", SEATS_PRICES='{"IDR": 1}'
    )
    assert settings.prices == {"IDR": 1, "EUR": 4500}
    assert settings.price_for("USD") is None


def test_r13_seats_prices_naming_the_default_currency_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from_env(
        monkeypatch, SEATS_PRICE_MONTHLY="2900", SEATS_PRICES='{"USD": 1500}'
    )
    assert settings.price_for("USD") == 1500
    assert settings.price_monthly == 1500


def test_r13_a_price_of_zero_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from_env(monkeypatch, SEATS_PRICES='{"USD": 0}').price_for("USD") == 0


@pytest.mark.parametrize(
    "raw",
    [
        '{"usd": 1900}',  # not an ISO 4217 code
        '{"US": 1900}',
        '{"USDX": 1900}',
        '{"USD": -1}',  # negative
        '{"USD": 19.5}',  # a float: money is integer minor units
        '{"USD": "1900"}',  # a string
        '{"USD": true}',
        '{"USD": null}',
        "[1900]",  # not a map
    ],
)
def test_r13_a_bad_price_map_is_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    with pytest.raises(ValidationError, match=r"prices|SEATS_PRICES"):
        settings_from_env(monkeypatch, SEATS_PRICES=raw)


def test_r13_seats_prices_that_is_not_json_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError):
        settings_from_env(monkeypatch, SEATS_PRICES="USD=1900")


# --- the directory refuses an unpriced currency ---------------------------------------------


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The app of these tests prices USD and IDR, nothing else."""
    return make_settings(database_url, prices=PRICES)


async def test_r13_an_account_in_a_configured_currency_is_created(api: Api) -> None:
    r = await api.put_account("bali", currency="IDR")
    assert r.status_code == 201, r.text
    assert r.json()["currency"] == "IDR"


async def test_r13_an_account_in_an_unpriced_currency_is_refused(api: Api, sql: Sql) -> None:
    r = await api.put_account("paris", currency="EUR")
    body = problem(r, 422, "unsupported_currency")
    assert body["currency"] == "EUR"
    assert body["supported"] == ["IDR", "USD"]
    assert await sql("SELECT id FROM account WHERE id = 'paris'") == []
    assert await sql("SELECT account_id FROM plan WHERE account_id = 'paris'") == []


async def test_r13_switching_an_account_to_an_unpriced_currency_is_refused(
    api: Api, sql: Sql
) -> None:
    r = await api.put_account("acme", name="Renamed", currency="EUR")
    problem(r, 422, "unsupported_currency")
    assert await sql("SELECT name, currency FROM account WHERE id = 'acme'") == [("Acme", "USD")]
    r = await api.put_account("acme", currency="IDR")  # priced: allowed before any invoice
    assert r.status_code == 200 and r.json()["currency"] == "IDR"


async def test_r13_an_account_without_a_currency_gets_the_default_one(api: Api) -> None:
    r = await api.put_account("initech")
    assert r.status_code == 201 and r.json()["currency"] == "USD"


async def test_r13_an_idr_account_is_quoted_at_the_idr_price(api: Api) -> None:
    assert (await api.put_account("bali", currency="IDR")).status_code == 201
    assert (await api.put_user("bali", "wayan", "primary_admin")).status_code == 201
    r = await api.call("POST", "bali", "/quotes", user="wayan", json={"seats": 25})
    assert r.status_code == 201, r.text
    quote = r.json()
    assert (quote["currency"], quote["unit_price"]) == ("IDR", 300000)
    assert quote["monthly_total"] == 25 * 300000
    # Out of no plan, all 25 seats are charged for the 10 of 30 days left (2026-11-21..12-01).
    assert quote["due_now"] == 25 * 300000 * 10 // 30
