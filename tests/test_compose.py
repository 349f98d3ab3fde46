"""Static checks of the container setup: docker-compose.yml and Dockerfile."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

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


def test_compose_seats_waits_for_healthy_db() -> None:
    depends_on = _compose()["services"]["seats"]["depends_on"]
    assert isinstance(depends_on, dict), "depends_on needs the long form to carry a condition"
    assert depends_on["db"]["condition"] == "service_healthy"


def test_compose_seats_database_url_matches_db() -> None:
    services = _compose()["services"]
    db_env = _env(services["db"])
    url = make_url(_env(services["seats"])["SEATS_DATABASE_URL"])
    assert url.drivername == "postgresql+asyncpg"
    assert url.host == "db"
    assert url.port in (None, 5432)
    assert url.username == db_env["POSTGRES_USER"]
    assert url.password == db_env["POSTGRES_PASSWORD"]
    assert url.database == db_env["POSTGRES_DB"]


def test_compose_seats_requires_jwt_secret() -> None:
    secret = _env(_compose()["services"]["seats"])["SEATS_JWT_SECRET"]
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


def test_compose_runs_the_webhook_worker_as_its_own_service() -> None:
    services = _compose()["services"]
    worker = services["webhooks"]
    command = worker["command"]
    argv = _exec_form(command) if isinstance(command, str) else [str(a) for a in command]
    assert argv == ["seats", "webhooks", "deliver"]
    env = _env(worker)
    assert env["SEATS_DATABASE_URL"] == _env(services["seats"])["SEATS_DATABASE_URL"]
    assert env["SEATS_JWT_SECRET"].startswith("${SEATS_JWT_SECRET:?")
    # The schema must be migrated (by the service) before the worker reads the outbox.
    assert worker["depends_on"]["seats"]["condition"] == "service_healthy"
    # /healthz is the service's: the worker's health is its metrics port answering.
    port = env["SEATS_WEBHOOK_METRICS_PORT"]
    assert port in " ".join(worker["healthcheck"]["test"])
    # SIGTERM, then time to finish the sends in flight (10 s timeout each).
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = str(worker["stop_grace_period"])
    assert grace.endswith("s") and int(grace[:-1]) > 10
