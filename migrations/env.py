"""Alembic environment: one set of migrations for SQLite and PostgreSQL, run async."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from app.config import Pooler, get_settings
from app.db import Base, create_engine
from app.models import import_all
from app.roles import grant_runtime_role

import_all()
config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    return str(url) if url else get_settings().database_url


def _pooler() -> Pooler:
    if "url" in config.attributes:
        pooler: Pooler = config.attributes.get("pooler", "none")
        return pooler
    return get_settings().database_pooler


def _app_role() -> str | None:
    # Called by `seats migrate` (which passes the URL and the role), or by the alembic CLI.
    if "url" in config.attributes:
        role = config.attributes.get("app_role")
        return str(role) if role else None
    return get_settings().database_app_role


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        role = _app_role()
        if role and connection.dialect.name == "postgresql":
            # In the migration's transaction: the new tables and their grants appear together.
            grant_runtime_role(connection, role)


async def _run() -> None:
    engine = create_engine(_url(), pool_size=1, pooler=_pooler())
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run())
