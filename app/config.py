"""Settings: one pydantic-settings object, read from ``SEATS_*`` environment variables."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field, StrictInt, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.billing.pricing import MAX_PRICE, MAX_SEATS

MIN_SECRET_LENGTH = 32
CURRENCY_PATTERN = r"^[A-Z]{3}$"
_CURRENCY = re.compile(CURRENCY_PATTERN)

# SEATS_DATABASE_POOLER: what stands between the service and PostgreSQL (app/db.py).
Pooler = Literal["none", "transaction"]

# Driver settings a URL's query string once carried: asyncpg takes its query parameters as a
# connection's startup parameters (the listener's too) and gets them as strings.
_DRIVER_QUERY_PARAMETERS = (
    "statement_cache_size",
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
)

# A monthly seat price in the currency's minor units: an integer, never a float or a string.
Price = Annotated[StrictInt, Field(ge=0)]


class InvoiceIssuer(BaseModel):
    """The seller named on invoice documents (SEATS_INVOICE_ISSUER)."""

    name: str = Field(min_length=1, max_length=200)
    address: str = Field(default="", max_length=500, description="Lines separated by newlines.")
    tax_id: str = Field(default="", max_length=100)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEATS_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./var/seats.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        description="Database connections per process at most (no overflow beyond it), besides "
        "the agent-check cache's listening connection.",
    )
    database_pooler: Pooler = Field(
        default="none",
        description="`transaction` when SEATS_DATABASE_URL is a pooler in transaction mode "
        "that does not map prepared statements (PgBouncer before 1.21, or "
        "max_prepared_statements=0): every statement is sent unnamed. `none` for PostgreSQL "
        "itself, a session-mode pooler, or PgBouncer 1.21+ with max_prepared_statements > 0.",
    )
    database_listen_url: str | None = Field(
        default=None,
        description="PostgreSQL: the agent-check cache's LISTEN connection, straight to the "
        "primary, never through a pooler (the cache then never serves). Default: "
        "SEATS_DATABASE_URL.",
    )
    database_read_url: str | None = Field(
        default=None,
        description="PostgreSQL: one or more streaming standbys, as URLs separated by commas, for "
        "the reads that tolerate lag (lists, the plan summary, the agent check's cache misses). "
        "A read goes to a standby only when it has replayed every change the worker knows of "
        "for the account (docs/operators/fleet.md, Replicas); otherwise, or when the standby "
        "is unreachable, it reads SEATS_DATABASE_URL. Unset: every read on SEATS_DATABASE_URL.",
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        # PORT: the name container platforms set; SEATS_PORT wins when both are.
        validation_alias=AliasChoices("SEATS_PORT", "PORT"),
        description="The port `seats serve` listens on unless --port says otherwise, and the "
        "one `seats demo` prints. Falls back to PORT.",
    )
    dev: bool = Field(default=False, description="Development mode: allows a short JWT secret.")
    jwt_secret: str = Field(default="", description="HS256 key for user and service tokens.")
    jwt_public_key: str | None = Field(
        default=None, description="PEM public key: when set, tokens are verified with RS256."
    )
    jwt_private_key: str | None = Field(
        default=None, description="PEM private key, only for `seats token` with RS256."
    )
    price_monthly: int = Field(
        default=1900,
        ge=0,
        description="Seat price per month of SEATS_CURRENCY, in minor units, when SEATS_PRICES "
        "does not name that currency (the setting from before SEATS_PRICES).",
    )
    currency: str = Field(
        default="USD", pattern=CURRENCY_PATTERN, description="Currency of new accounts."
    )
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description="R13: JSON map of currency to monthly seat price in its minor units, e.g. "
        '{"USD": 1900, "IDR": 300000}. After validation it always names SEATS_CURRENCY.',
    )
    invoice_prefix: str = Field(
        default="INV",
        pattern=r"^[A-Z0-9]{1,12}$",
        description="SPEC §10: the first part of every invoice number (1-12 of A-Z, 0-9), as in "
        "INV-7Q2LZK4M-0001. A number keeps the prefix it was issued with.",
    )
    invoice_issuer: InvoiceIssuer = Field(
        default_factory=lambda: InvoiceIssuer(name="Conversations"),
        description='SPEC §10: who issues the invoices, as JSON: {"name": "...", "address": '
        '"line 1\\nline 2", "tax_id": "..."}; shown at the top of every invoice PDF.',
    )
    trial_days: int = Field(default=14, ge=1)
    alert_thresholds: Annotated[list[int], NoDecode] = Field(
        default=[80, 100],
        description="R16: percentages of the seat total whose first reach sends "
        "`seats.threshold_reached`, as a JSON list or comma-separated, e.g. `[80, 100]` or "
        "`80,100`: whole numbers from 1 to 100, each once.",
    )
    trial_seats: int = Field(default=20, ge=1)
    test_clock: bool = Field(default=False, description="Enables PUT /internal/v1/test-clock.")
    cors_origins: list[str] = Field(default_factory=list)
    payments_gateway: Literal["sandbox", "http"] = "sandbox"
    payments_url: str | None = None
    payments_connect_timeout: float = Field(default=2.0, gt=0)
    payments_read_timeout: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    idempotency_retention_hours: int = Field(default=24, ge=24)
    idempotency_lock_seconds: float = Field(
        default=60.0,
        gt=0,
        description="After this long an unfinished request's key is taken over by a retry "
        "(the first process is presumed dead).",
    )
    renewal_retry_hours: int = Field(default=24, ge=0)
    renewal_max_attempts: int = Field(default=4, ge=1)
    dunning_days: int = Field(
        default=14,
        ge=0,
        description="Days after a renewal's first decline until the plan is canceled (R9).",
    )
    pending_purchase_hours: int = Field(
        default=23,
        ge=1,
        description="Hours a purchase may wait for a definitive answer before it is voided (R14).",
    )
    collection_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="After this long without an outcome, a gateway call is presumed dead and "
        "sent again under the same key (wall-clock time; longer than any gateway call).",
    )
    billing_concurrency: int = Field(
        default=16, ge=1, le=256, description="Gateway calls in flight at once in a billing run."
    )
    billing_batch_size: int = Field(
        default=200, ge=1, le=10_000, description="Rows a billing-run job claims at a time."
    )
    quote_ttl_seconds: int = Field(default=15 * 60, ge=1)
    access_cache: bool = Field(
        default=True,
        description="PostgreSQL: each worker caches agent checks, dropped by LISTEN/NOTIFY "
        "on every change to access (app/entitlements.py). SQLite never caches.",
    )
    access_cache_ttl_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest a cached agent check is served (the bound if the listening "
        "connection died unnoticed between two pings).",
    )
    access_cache_entries: int = Field(
        default=100_000, ge=1, description="Cached agent checks per worker, at most."
    )
    alembic_ini: Path | None = Field(
        default=None,
        description="An alembic.ini to migrate with; by default the migrations in the package.",
    )
    database_app_role: str | None = Field(
        default=None,
        description="PostgreSQL: the runtime role `seats migrate` grants what the service needs.",
    )
    log_level: str = "INFO"
    access_log_sample: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of fast successful requests written to the access log; errors "
        "(status >= 400) and slow requests (>= 1 s) are always written.",
    )
    jwt_issuer: str | None = Field(
        default=None, description="When set, tokens must carry this `iss`."
    )
    jwt_audience: str | None = Field(
        default=None, description="When set, tokens must carry this `aud`."
    )
    jwt_max_lifetime_seconds: int | None = Field(
        default=None,
        ge=1,
        description="When set, a token whose `exp` is further away than this is refused.",
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        description="When set, GET /metrics needs `Authorization: Bearer <this token>`.",
    )
    max_live_quotes: int = Field(
        default=100,
        ge=1,
        description="Stored quotes kept per account; creating one more drops the oldest.",
    )
    http_parser: Literal["h11", "httptools"] = Field(
        default="httptools",
        description="HTTP/1.1 parser: httptools (C, several times faster) or h11 (pure "
        "Python). Both refuse a request line and headers past SEATS_MAX_HEADER_BYTES.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest request line plus headers; larger requests get 400.",
    )
    limit_concurrency: int = Field(
        default=1000,
        ge=1,
        description="Connections and requests at once per worker; beyond, 503.",
    )
    timeout_keep_alive: int = Field(
        default=5, ge=1, description="Seconds an idle keep-alive connection stays open."
    )
    webhook_allow_hosts: str = Field(
        default="",
        description="Comma-separated hosts webhooks may reach over plain http or at a "
        "non-public address (e.g. 127.0.0.1 in tests).",
    )
    webhook_max_endpoints: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="Webhook endpoints the service keeps (disabled ones count); creating one "
        "more answers 409 webhook_endpoint_limit_reached. Every event writes one delivery row "
        "per enabled subscribed endpoint inside the request's transaction.",
    )
    webhook_concurrency: int = Field(default=16, ge=1, description="Sends in flight per worker.")
    webhook_timeout: float = Field(default=10.0, gt=0, description="Seconds per webhook send.")
    webhook_poll_seconds: float = Field(
        default=0.2, gt=0, description="How often an idle webhook worker looks for due rows."
    )
    webhook_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="The webhook worker serves /metrics here."
    )
    webhook_metrics_host: str = "127.0.0.1"
    fault_point: str | None = Field(
        default=None, description="Test only: crash the process at this named point."
    )

    @field_validator("alert_thresholds", mode="before")
    @classmethod
    def _parse_alert_thresholds(cls, value: object) -> list[int]:
        return parse_alert_thresholds(value)

    @model_validator(mode="after")
    def _check_keys(self) -> Settings:
        if self.jwt_public_key is None and len(self.jwt_secret) < MIN_SECRET_LENGTH:
            if not self.dev:
                raise ValueError(
                    f"SEATS_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters "
                    "(or set SEATS_JWT_PUBLIC_KEY; SEATS_DEV=1 allows a short one)"
                )
            if not self.jwt_secret:
                raise ValueError("SEATS_JWT_SECRET is empty")
        if self.payments_gateway == "http" and not self.payments_url:
            raise ValueError("SEATS_PAYMENTS_URL is required with SEATS_PAYMENTS_GATEWAY=http")
        self._settle_prices()
        self._check_database_urls()
        return self

    def _check_database_urls(self) -> None:
        if self.read_urls and not all(
            url.startswith("postgresql") for url in (self.database_url, *self.read_urls)
        ):
            raise ValueError(
                "SEATS_DATABASE_READ_URL: standbys are for PostgreSQL, and so must be "
                "SEATS_DATABASE_URL (SQLite has no replicas)"
            )
        for name, url in (
            ("SEATS_DATABASE_URL", self.database_url),
            ("SEATS_DATABASE_LISTEN_URL", self.database_listen_url or ""),
            *(("SEATS_DATABASE_READ_URL", url) for url in self.read_urls),
        ):
            query = url.partition("?")[2]
            given = [p for p in _DRIVER_QUERY_PARAMETERS if f"{p}=" in query]
            if given:
                raise ValueError(
                    f"{name}: {', '.join(given)} in the URL is not supported (passed on to "
                    "every connection as a startup parameter, as a string): set "
                    "SEATS_DATABASE_POOLER=transaction behind a transaction pooler instead"
                )

    @property
    def read_urls(self) -> list[str]:
        """The standbys of SEATS_DATABASE_READ_URL, in order. A comma starts a new URL only
        before a scheme, so a URL's own commas (a multi-host one) stay in it."""
        if not self.database_read_url:
            return []
        urls = re.split(r",\s*(?=[a-z][a-z0-9+.-]*://)", self.database_read_url.strip())
        return [url.strip() for url in urls if url.strip()]

    @property
    def listen_url(self) -> str:
        """Where the agent-check cache's listener connects (straight to the primary)."""
        return self.database_listen_url or self.database_url

    def _settle_prices(self) -> None:
        """SPEC §3 Prices: SEATS_PRICES, with SEATS_PRICE_MONTHLY as SEATS_CURRENCY's price
        when the map does not name it, so settings from before SEATS_PRICES keep working."""
        bad = sorted(code for code in self.prices if not _CURRENCY.fullmatch(code))
        if bad:
            raise ValueError(
                f"SEATS_PRICES: currencies must be 3 uppercase letters (ISO 4217), got {bad}"
            )
        if self.currency not in self.prices:
            self.prices = {**self.prices, self.currency: self.price_monthly}
        # R18: refused at start rather than found by a renewal that cannot be invoiced.
        too_large = sorted(code for code, price in self.prices.items() if price > MAX_PRICE)
        if too_large:
            raise ValueError(
                f"SEATS_PRICES (or SEATS_PRICE_MONTHLY): the prices of {', '.join(too_large)} are "
                f"above {MAX_PRICE}, the largest monthly price for which "
                f"{MAX_SEATS:,} seats x 12 months fit a signed 64-bit integer"
            )
        # One truth: code that still reads price_monthly gets the default currency's price.
        self.price_monthly = self.prices[self.currency]

    def price_for(self, currency: str) -> int | None:
        """The monthly seat price of ``currency`` in its minor units; None if unconfigured."""
        return self.prices.get(currency)

    @property
    def jwt_algorithm(self) -> str:
        """Fixed by configuration, never taken from a token's header."""
        return "RS256" if self.jwt_public_key else "HS256"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def parse_alert_thresholds(value: object) -> list[int]:
    """SEATS_ALERT_THRESHOLDS (R16): a JSON list or comma-separated whole percentages from 1
    to 100, each once; sorted. Anything else refuses to start, saying what was wrong."""
    items: object = value
    if isinstance(value, str):
        text = value.strip()
        try:
            items = json.loads(text) if text.startswith("[") else text.split(",")
        except ValueError:
            items = None
    if not isinstance(items, list | tuple):
        raise ValueError(f"SEATS_ALERT_THRESHOLDS must be a list such as [80, 100], got {value!r}")
    found: list[int] = []
    for item in items:
        text = str(item).strip()
        if (
            isinstance(item, bool)
            or not re.fullmatch(r"[0-9]{1,3}", text)
            or not (1 <= int(text) <= 100)
        ):
            raise ValueError(
                "SEATS_ALERT_THRESHOLDS: each threshold is a whole percentage of the seat total "
                f"from 1 to 100, got {item!r}"
            )
        if int(text) in found:
            raise ValueError(f"SEATS_ALERT_THRESHOLDS: {int(text)} is named twice")
        found.append(int(text))
    return sorted(found)


@lru_cache
def get_settings() -> Settings:
    return Settings()
