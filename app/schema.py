"""Where the migrations are, which revision is their head, and which one a database is at.

The migrations ship inside the package (``app/migrations``, the repository's top-level
``migrations/`` folder), so an installed ``seats`` finds them from any working directory;
``SEATS_ALEMBIC_INI`` still points Alembic at another ``alembic.ini`` when set.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.config import Pooler
from app.db import create_engine

MIGRATIONS = Path(str(files("app"))) / "migrations"


def alembic_config(alembic_ini: Path | None) -> Config:
    """The Alembic configuration: the given ``alembic.ini``, or the packaged migrations."""
    if alembic_ini is not None:
        return Config(str(alembic_ini))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("timezone", "UTC")
    return cfg


def head_revision(alembic_ini: Path | None) -> str | None:
    """The revision the code expects: the head of the migrations."""
    return ScriptDirectory.from_config(alembic_config(alembic_ini)).get_current_head()


class SchemaNotAtHead(RuntimeError):
    """The database's schema is not the one this version of the service expects."""


async def check_schema_at_head(
    database_url: str, alembic_ini: Path | None, *, pooler: Pooler = "none"
) -> str:
    """The database's revision, or ``SchemaNotAtHead`` saying what to do about it."""
    expected = head_revision(alembic_ini)
    engine = create_engine(database_url, pool_size=1, pooler=pooler)
    try:
        async with engine.connect() as conn:
            current = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError as exc:
        raise SchemaNotAtHead(
            f"cannot read the schema's revision ({type(exc.orig).__name__}): is the database "
            "migrated (`seats migrate`, as the owner) and may this role read alembic_version?"
        ) from exc
    finally:
        await engine.dispose()
    if current != expected:
        raise SchemaNotAtHead(
            f"the database schema is at revision {current}, this service needs {expected}: "
            "run `seats migrate` as the database owner first"
        )
    return str(current)
