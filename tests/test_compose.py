"""Static checks of the container setup: docker-compose.yml and Dockerfile."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from sqlalchemy.engine import make_url

from app.cli import migrate
from app.schema import check_schema_at_head, head_revision
from tests.conftest import make_settings, postgres_only

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...] form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def _exec_form(args: str) -> list[str]:
    if args.startswith("["):
        parsed = json.loads(args)
        assert isinstance(parsed, list)
        return [str(a) for a in parsed]
    return shlex.split(args)


def test_compose_db_is_postgres_15_with_healthcheck() -> None:
    db = _compose()["services"]["db"]
    assert str(db["image"]).startswith("postgres:15")
    test = db["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))


def test_compose_seats_waits_for_healthy_db_and_the_migration() -> None:
    services = _compose()["services"]
    for name in ("migrate", "seats"):
        depends_on = services[name]["depends_on"]
        assert isinstance(depends_on, dict), "depends_on needs the long form to carry a condition"
        assert depends_on["db"]["condition"] == "service_healthy"
    assert services["seats"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def _init_script() -> str:
    db = _compose()["services"]["db"]
    mounts = [str(v) for v in db["volumes"]]
    init = [m for m in mounts if ":/docker-entrypoint-initdb.d" in m]
    assert len(init) == 1, mounts
    folder = ROOT / init[0].split(":")[0]
    scripts = sorted(folder.glob("*.sh"))
    assert scripts, folder
    return "\n".join(p.read_text(encoding="utf-8") for p in scripts)


def test_compose_migrates_as_the_owner_and_serves_as_the_runtime_role() -> None:
    services = _compose()["services"]
    owner = make_url(_env(services["migrate"])["SEATS_DATABASE_URL"])
    runtime = make_url(_env(services["seats"])["SEATS_DATABASE_URL"])
    for url in (owner, runtime):
        assert url.drivername == "postgresql+asyncpg"
        assert (url.host, url.port, url.database) == ("db", 5432, "seats")
    assert owner.username != runtime.username
    assert _env(services["migrate"])["SEATS_DATABASE_APP_ROLE"] == runtime.username
    assert services["migrate"]["command"] == ["seats", "migrate"]
    serve = services["seats"]["command"]
    assert serve[:2] == ["seats", "serve"] and "--no-migrate" in serve
    assert "SEATS_DATABASE_APP_ROLE" not in _env(services["seats"])
    # The init script creates both roles, and the database owned by the owner.
    script = _init_script()
    assert f"CREATE ROLE {owner.username} LOGIN" in script
    assert f"CREATE ROLE {runtime.username} LOGIN" in script
    assert f"CREATE DATABASE {owner.database} OWNER {owner.username}" in script
    # The passwords come from the environment, never from the file.
    db_env = _env(services["db"])
    for url, variable in ((owner, "SEATS_OWNER_PASSWORD"), (runtime, "SEATS_APP_PASSWORD")):
        assert url.password == f"${{{variable}:?set {variable}}}"
        assert db_env[variable] == url.password
    assert db_env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_compose_seats_requires_jwt_secret() -> None:
    for name in ("migrate", "seats"):
        secret = _env(_compose()["services"][name])["SEATS_JWT_SECRET"]
        assert secret.startswith("${SEATS_JWT_SECRET:?"), "no default secret may be baked in"


def test_dockerfile_uses_slim_base() -> None:
    froms = [args for keyword, args in _dockerfile_instructions() if keyword == "FROM"]
    assert froms
    assert all("slim" in args.split()[0] for args in froms)


def test_dockerfile_runs_as_non_root() -> None:
    users = [args for keyword, args in _dockerfile_instructions() if keyword == "USER"]
    assert users, "the image must switch to an unprivileged USER"
    final_user = users[-1].split(":")[0]
    assert final_user not in ("root", "0")


def test_dockerfile_cmd_serves() -> None:
    cmds = [args for keyword, args in _dockerfile_instructions() if keyword == "CMD"]
    assert cmds
    argv = _exec_form(cmds[-1])
    assert argv[:2] == ["seats", "serve"]
    assert "0.0.0.0" in argv  # reachable from outside the container


def test_dockerfile_healthcheck_and_alembic_ini() -> None:
    instructions = _dockerfile_instructions()
    assert any(k == "HEALTHCHECK" and "/healthz" in args for k, args in instructions)
    env = " ".join(args for k, args in instructions if k == "ENV")
    assert "SEATS_ALEMBIC_INI=/app/alembic.ini" in env
    copied = " ".join(args for k, args in instructions if k == "COPY")
    assert "alembic.ini" in copied
    assert "migrations/" in copied


@postgres_only
def test_the_init_script_makes_roles_that_migrate_and_serve() -> None:
    """Run docker/postgres-init on the test cluster as the image would, then migrate as the
    owner and check the schema as the runtime role, with the compose file's settings."""
    services = _compose()["services"]
    owner = make_url(_env(services["migrate"])["SEATS_DATABASE_URL"])
    runtime = make_url(_env(services["seats"])["SEATS_DATABASE_URL"])
    test_url = make_url(os.environ["TEST_DATABASE_URL"])

    def on_cluster(url: Any, **parts: Any) -> str:
        return str(
            url.set(
                host=test_url.host, port=test_url.port, password=None, **parts
            ).render_as_string(hide_password=False)
        )

    cleanup = (
        "DROP DATABASE IF EXISTS seats WITH (FORCE)",
        "DROP DATABASE IF EXISTS seats_roles WITH (FORCE)",
        f"DROP ROLE IF EXISTS {runtime.username}",
        f"DROP ROLE IF EXISTS {owner.username}",
    )

    async def superuser(*statements: str) -> None:
        conn = await asyncpg.connect(on_cluster(test_url).replace("+asyncpg", ""))
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(superuser(*cleanup))
    try:
        env = {
            **os.environ,
            "PATH": f"{os.environ['TEST_PG_BINDIR']}:{os.environ['PATH']}",
            "PGHOST": str(test_url.host),
            "PGPORT": str(test_url.port),
            "POSTGRES_USER": str(test_url.username),
            "SEATS_OWNER_PASSWORD": "owner-password",
            "SEATS_APP_PASSWORD": "app-password",
        }
        for script in sorted((ROOT / "docker" / "postgres-init").glob("*.sh")):
            subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True)
        migrate(
            make_settings(
                on_cluster(owner),
                database_app_role=_env(services["migrate"])["SEATS_DATABASE_APP_ROLE"],
            )
        )
        revision = asyncio.run(check_schema_at_head(on_cluster(runtime), None))
        assert revision == head_revision(None)

        async def as_runtime() -> str:
            conn = await asyncpg.connect(on_cluster(runtime).replace("+asyncpg", ""))
            try:
                with pytest.raises(asyncpg.InsufficientPrivilegeError) as info:
                    await conn.execute("TRUNCATE event")
                return str(info.value)
            finally:
                await conn.close()

        assert asyncio.run(as_runtime()) == "permission denied for table event"
    finally:
        asyncio.run(superuser(*cleanup))


def test_compose_runs_the_webhook_worker_as_its_own_service() -> None:
    services = _compose()["services"]
    worker = services["webhooks"]
    command = worker["command"]
    argv = _exec_form(command) if isinstance(command, str) else [str(a) for a in command]
    assert argv == ["seats", "webhooks", "deliver"]
    env = _env(worker)
    assert env["SEATS_DATABASE_URL"] == _env(services["seats"])["SEATS_DATABASE_URL"]
    assert env["SEATS_JWT_SECRET"].startswith("${SEATS_JWT_SECRET:?")
    # The schema must be migrated (by the one-shot owner) before the worker reads the outbox.
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # /healthz is the service's: the worker's health is its metrics port answering.
    port = env["SEATS_WEBHOOK_METRICS_PORT"]
    assert port in " ".join(worker["healthcheck"]["test"])
    # SIGTERM, then time to finish the sends in flight (10 s timeout each).
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = str(worker["stop_grace_period"])
    assert grace.endswith("s") and int(grace[:-1]) > 10
