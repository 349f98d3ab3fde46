"""SEATS_DATABASE_READ_URL: the form the setting takes, and what it refuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.conftest import make_settings

PRIMARY = "postgresql+asyncpg://seats@primary/seats"


def test_standbys_are_urls_separated_by_commas_and_a_multi_host_url_stays_whole() -> None:
    settings = make_settings(
        PRIMARY,
        database_read_url="postgresql+asyncpg://seats@standby1/seats, "
        "postgresql+asyncpg://seats@standby2:5433,standby3:5433/seats",
    )
    assert settings.read_urls == [
        "postgresql+asyncpg://seats@standby1/seats",
        "postgresql+asyncpg://seats@standby2:5433,standby3:5433/seats",
    ]
    assert make_settings(PRIMARY).read_urls == []


@pytest.mark.parametrize(
    ("primary", "read_url"),
    [
        ("sqlite+aiosqlite:///./var/seats.db", PRIMARY),
        (PRIMARY, "sqlite+aiosqlite:///./var/standby.db"),
    ],
)
def test_standbys_are_refused_unless_every_database_is_postgresql(
    primary: str, read_url: str
) -> None:
    with pytest.raises(ValidationError, match="SEATS_DATABASE_READ_URL"):
        make_settings(primary, database_read_url=read_url)
