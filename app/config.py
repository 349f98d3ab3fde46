"""Settings: one pydantic-settings object, read from ``SEATS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEATS_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./var/seats.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    database_pool_size: int = Field(default=10, ge=1)
    dev: bool = Field(default=False, description="Development mode: allows a short JWT secret.")
    jwt_secret: str = Field(default="", description="HS256 key for user and service tokens.")
    jwt_public_key: str | None = Field(
        default=None, description="PEM public key: when set, tokens are verified with RS256."
    )
    jwt_private_key: str | None = Field(
        default=None, description="PEM private key, only for `seats token` with RS256."
    )
    price_monthly: int = Field(default=1900, ge=0, description="Seat price per month, cents.")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    trial_days: int = Field(default=14, ge=1)
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
    quote_ttl_seconds: int = Field(default=15 * 60, ge=1)
    alembic_ini: Path = Field(default=Path(__file__).resolve().parent.parent / "alembic.ini")
    log_level: str = "INFO"
    access_log_sample: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of fast successful requests written to the access log; errors "
        "(status >= 400) and slow requests (>= 1 s) are always written.",
    )
    webhook_allow_hosts: str = Field(
        default="",
        description="Comma-separated hosts webhooks may reach over plain http or at a "
        "non-public address (e.g. 127.0.0.1 in tests).",
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
        return self

    @property
    def jwt_algorithm(self) -> str:
        """Fixed by configuration, never taken from a token's header."""
        return "RS256" if self.jwt_public_key else "HS256"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
