"""The migrations ship in the package, and every table has a decision for the runtime role."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command

from app.db import Base
from app.models import import_all
from app.roles import PRIVILEGES
from app.schema import (
    MIGRATIONS,
    SchemaNotAtHead,
    alembic_config,
    check_schema_at_head,
    head_revision,
)
from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent


def test_every_table_says_what_the_runtime_role_may_do() -> None:
    import_all()
    assert set(PRIVILEGES) == {*Base.metadata.tables, "alembic_version"}


def test_no_runtime_role_may_delete_or_rewrite_the_ledger() -> None:
    for table in ("invoice", "invoice_line", "charge_attempt", "event"):
        assert "DELETE" not in PRIVILEGES[table]
        assert "TRUNCATE" not in PRIVILEGES[table]
    assert "UPDATE" not in PRIVILEGES["invoice_line"] + PRIVILEGES["charge_attempt"]
    assert "UPDATE" not in PRIVILEGES["event"]
    assert PRIVILEGES["invoice"].endswith("UPDATE (status, paid_at, charge_id, failure_reason)")


def test_the_packaged_migrations_are_the_repository_ones() -> None:
    assert MIGRATIONS.resolve() == (ROOT / "migrations").resolve()
    assert head_revision(None) == head_revision(ROOT / "alembic.ini")


def test_an_installed_seats_migrates_from_any_folder(tmp_path: Path) -> None:
    """Build the package as an installer would, then migrate from an unrelated folder."""
    build, elsewhere = tmp_path / "build", tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "from setuptools import setup; setup()"
    subprocess.run(
        [sys.executable, "-c", code, "-q", "build_py", "--build-lib", str(build)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    assert (build / "app" / "migrations" / "env.py").is_file()
    assert not (build / "app" / "migrations").is_symlink()  # real files, as in a wheel
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATS_")}
    env.update(
        PYTHONPATH=str(build),
        SEATS_DATABASE_URL=f"sqlite+aiosqlite:///{elsewhere / 'seats.db'}",
        SEATS_JWT_SECRET=SECRET,
    )
    where = subprocess.run(
        [sys.executable, "-c", "import app; print(app.__file__)"],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(build))
    subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
    )
    with sqlite3.connect(elsewhere / "seats.db") as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == head_revision(None)


async def test_the_start_up_check_refuses_a_database_behind_head_or_empty(tmp_path: Path) -> None:
    """What ``seats serve --no-migrate`` checks before it serves (SQLite here; PostgreSQL in
    tests/security/test_roles.py)."""
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(SchemaNotAtHead, match="cannot read the schema's revision"):
        await check_schema_at_head(empty, None)
    behind = f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}"
    await asyncio.to_thread(_upgrade, behind, "0002_seats_ledger")
    with pytest.raises(SchemaNotAtHead) as info:
        await check_schema_at_head(behind, None)
    assert str(info.value) == (
        f"the database schema is at revision 0002_seats_ledger, this service needs "
        f"{head_revision(None)}: run `seats migrate` as the database owner first"
    )
    await asyncio.to_thread(_upgrade, behind, "head")
    assert await check_schema_at_head(behind, None) == head_revision(None)


def _upgrade(url: str, revision: str) -> None:
    cfg = alembic_config(None)
    cfg.attributes.update(url=url, configure_logging=False, app_role=None)
    command.upgrade(cfg, revision)
