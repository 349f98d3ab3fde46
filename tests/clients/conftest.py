"""Clients generated from the running service's own OpenAPI document (SPEC §4)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import shared_database_url
from tests.live import LiveServer, on_clean_database


def tool_or_skip(name: str) -> str:
    """The path of a command; missing, a skip here and a failure in CI (which installs it).

    The virtualenv's own commands first: ``make test`` runs pytest without activating it.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must generate the clients, and `{name}` is not installed")
    pytest.skip(f"`{name}` is not installed (.ci/run installs it)")


@pytest.fixture(scope="package")
def package_server(
    migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One ``seats serve`` with the test clock for the tests of both clients."""
    with LiveServer(shared_database_url(migrated_template, tmp_path_factory), workers=1) as server:
        yield server


@pytest.fixture
def live(package_server: LiveServer, database_url: str, migrated_template: str) -> LiveServer:
    """``seats serve`` on a clean database, with the test clock."""
    return on_clean_database(package_server, migrated_template)


@pytest.fixture
def document(live: LiveServer) -> bytes:
    """The OpenAPI document as the running service serves it."""
    r = httpx.get(f"{live.url}/openapi.json", timeout=10)
    assert r.status_code == 200
    return r.content
