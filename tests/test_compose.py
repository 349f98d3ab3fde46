"""Static checks of the container setup: docker-compose.yml and Dockerfile."""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from sqlalchemy.engine import make_url

from app.cli import migrate
from app.config import Settings
from app.db import Database
from app.schema import check_schema_at_head, head_revision
from app.verify import verify
from tests.conftest import make_settings, postgres_only
from tests.live import free_port
from tests.pgbouncer import PGBOUNCER, pgbouncer_version

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


def _instances() -> dict[str, dict[str, Any]]:
    """The services that run ``seats serve``: the instances behind the load balancer."""
    return {
        name: service
        for name, service in _compose()["services"].items()
        if _argv(service)[:2] == ["seats", "serve"]
    }


def _argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return _exec_form(command) if isinstance(command, str) else [str(a) for a in command]


def _instance() -> dict[str, Any]:
    return next(iter(_instances().values()))


def test_compose_seats_waits_for_healthy_db_and_the_migration() -> None:
    services = _compose()["services"]
    depends_on = services["migrate"]["depends_on"]
    assert isinstance(depends_on, dict), "depends_on needs the long form to carry a condition"
    assert depends_on["db"]["condition"] == "service_healthy"
    for name, instance in _instances().items():
        depends_on = instance["depends_on"]
        # The listener needs the database itself; the pool needs PgBouncer.
        assert depends_on["db"]["condition"] == "service_healthy", name
        assert depends_on["pgbouncer"]["condition"] == "service_healthy", name
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name


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
    runtime = make_url(_env(_instance())["SEATS_DATABASE_URL"])
    for url in (owner, runtime):
        assert url.drivername == "postgresql+asyncpg"
        assert url.database == "seats"
    # The migration straight to PostgreSQL; the service through PgBouncer.
    assert (owner.host, owner.port) == ("db", 5432)
    assert (runtime.host, runtime.port) == ("pgbouncer", 6432)
    assert owner.username != runtime.username
    assert _env(services["migrate"])["SEATS_DATABASE_APP_ROLE"] == runtime.username
    assert services["migrate"]["command"] == ["seats", "migrate"]
    for instance in _instances().values():
        assert "--no-migrate" in _argv(instance)
        assert "SEATS_DATABASE_APP_ROLE" not in _env(instance)
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
    services = _compose()["services"]
    for name in ("migrate", "webhooks", "billing-run", *_instances()):
        secret = _env(services[name])["SEATS_JWT_SECRET"]
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
    runtime = make_url(_env(_instance())["SEATS_DATABASE_URL"])
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
    assert env["SEATS_DATABASE_URL"] == _env(_instance())["SEATS_DATABASE_URL"]
    assert env["SEATS_DATABASE_POOLER"] == "transaction"
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


# --- the fleet: PgBouncer, two instances, the jobs, the connection budget ---------------------


def _pgbouncer_ini() -> configparser.ConfigParser:
    build = _compose()["services"]["pgbouncer"]["build"]
    folder = ROOT / (build if isinstance(build, str) else build["context"])
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read_string((folder / "pgbouncer.ini").read_text(encoding="utf-8"))
    return ini


def _pool_size(service: dict[str, Any]) -> int:
    size = _env(service).get("SEATS_DATABASE_POOL_SIZE")
    return int(size) if size else int(Settings.model_fields["database_pool_size"].default)


def _workers(service: dict[str, Any]) -> int:
    argv = _argv(service)
    return int(argv[argv.index("--workers") + 1]) if "--workers" in argv else 1


def test_compose_is_a_fleet_behind_pgbouncer_in_transaction_mode() -> None:
    """Two instances or more, each with several workers, through Debian's PgBouncer (1.18) in
    transaction mode, so told (SEATS_DATABASE_POOLER=transaction); each worker's listener
    straight to PostgreSQL, never through the pooler (docs/operators/fleet.md)."""
    instances = _instances()
    assert len(instances) >= 2
    for name, instance in instances.items():
        assert _workers(instance) >= 2, name
        env = _env(instance)
        assert env["SEATS_DATABASE_POOLER"] == "transaction", name
        listen = make_url(env["SEATS_DATABASE_LISTEN_URL"])
        runtime = make_url(env["SEATS_DATABASE_URL"])
        assert (listen.host, listen.port) == ("db", 5432), name
        assert (listen.username, listen.database) == (runtime.username, runtime.database)
    ini = _pgbouncer_ini()
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    assert ini["pgbouncer"]["listen_port"] == "6432"
    target = dict(part.split("=", 1) for part in ini["databases"]["seats"].split())
    assert (target["host"], target["port"], target["dbname"]) == ("db", "5432", "seats")
    # Refused after query_wait_timeout rather than held for the driver's 30 s timeout.
    assert 0 < int(ini["pgbouncer"]["query_wait_timeout"]) <= 10
    dockerfile = (ROOT / "docker" / "pgbouncer" / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM debian:bookworm" in dockerfile and "install" in dockerfile
    assert "USER " in dockerfile  # PgBouncer refuses to run as root
    # The runtime role's password comes from the environment, as the database's does.
    password = _env(_compose()["services"]["pgbouncer"])["SEATS_APP_PASSWORD"]
    assert password.startswith("${SEATS_APP_PASSWORD:?")


def test_compose_runs_the_billing_run_as_a_job_through_pgbouncer() -> None:
    job = _compose()["services"]["billing-run"]
    assert _argv(job) == ["seats", "billing", "run"]
    assert job["restart"] == "no" and job["profiles"] == ["jobs"]  # cron runs it, not `up`
    assert _env(job)["SEATS_DATABASE_URL"] == _env(_instance())["SEATS_DATABASE_URL"]
    assert _env(job)["SEATS_DATABASE_POOLER"] == "transaction"
    assert job["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_connection_budget_fits_pgbouncer_and_postgres() -> None:
    """docs/operators/fleet.md's formula on the compose file: PgBouncer takes every pool of
    the fleet (two billing runs may overlap), and its server connections, the listeners (one
    per worker) and the migration fit in PostgreSQL's max_connections less its reserved
    slots."""
    services = _compose()["services"]
    instances = _instances()
    clients = sum(_workers(s) * _pool_size(s) for s in instances.values())
    clients += _pool_size(services["webhooks"]) + 2 * _pool_size(services["billing-run"])
    listeners = sum(_workers(s) for s in instances.values())
    bouncer = _pgbouncer_ini()["pgbouncer"]
    assert clients <= int(bouncer["max_client_conn"])
    servers = int(bouncer["default_pool_size"]) + int(bouncer["reserve_pool_size"])
    assert servers <= int(bouncer["max_db_connections"])
    db = [str(a) for a in services["db"]["command"]]
    settings = dict(db[i + 1].split("=", 1) for i, a in enumerate(db) if a == "-c")
    available = int(settings["max_connections"]) - int(settings["superuser_reserved_connections"])
    assert int(bouncer["max_db_connections"]) + listeners + 1 <= available


@postgres_only
async def test_the_shipped_pgbouncer_config_serves_the_service_on_debians_pgbouncer(
    migrated_template: str,
) -> None:
    """docker/pgbouncer/pgbouncer.ini as Debian's PgBouncer (1.18) reads it, with only its
    addresses and files pointed at this machine: it starts, authenticates the runtime user by
    SCRAM against its auth file, and two processes' worth of the service
    (SEATS_DATABASE_POOLER=transaction, as the compose file sets) run ``seats verify``'s
    reads through its transaction pooling at once, and check the schema."""
    if pgbouncer_version() is None:
        pytest.skip("needs pgbouncer")
    with tempfile.TemporaryDirectory(prefix="seats-pgbouncer-ini.") as folder:
        await _serve_through_the_shipped_pgbouncer_config(migrated_template, Path(folder))


async def _serve_through_the_shipped_pgbouncer_config(
    migrated_template: str, tmp_path: Path
) -> None:
    server = make_url(migrated_template)
    port = free_port()
    text = (ROOT / "docker" / "pgbouncer" / "pgbouncer.ini").read_text(encoding="utf-8")
    replaced = {
        "host=db port=5432 dbname=seats": f"host={server.host} port={server.port} "
        f"dbname={server.database}",
        "listen_addr = 0.0.0.0": "listen_addr = 127.0.0.1",
        "listen_port = 6432": f"listen_port = {port}",
        "auth_file = /var/lib/bouncer/userlist.txt": f"auth_file = {tmp_path / 'userlist.txt'}",
    }
    for old, new in replaced.items():
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "pgbouncer.ini").write_text(text)
    (tmp_path / "userlist.txt").write_text(f'"{server.username}" "bouncer-password"\n')
    as_postgres: dict[str, Any] = {"user": "postgres", "group": "postgres"}
    if os.geteuid() == 0:  # PgBouncer refuses to run as root: as the cluster's owner
        for path in (tmp_path, *tmp_path.iterdir()):
            shutil.chown(path, "postgres")
    log = (tmp_path / "pgbouncer.log").open("wb")
    proc = subprocess.Popen(
        [PGBOUNCER, str(tmp_path / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=log,
        **(as_postgres if os.geteuid() == 0 else {}),
    )
    try:
        url = server.set(host="127.0.0.1", port=port, database="seats", password="bouncer-password")
        through = url.render_as_string(hide_password=False)
        for _ in range(200):
            assert proc.poll() is None, (tmp_path / "pgbouncer.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        wrong = url.set(password="wrong").render_as_string(hide_password=False)
        # PgBouncer's own refusal, a connection error (08P01) like its others.
        with pytest.raises(asyncpg.ProtocolViolationError, match="authentication failed"):
            await asyncpg.connect(wrong.replace("+asyncpg", ""))
        settings = make_settings(through, database_pooler="transaction")
        assert await check_schema_at_head(through, None, pooler="transaction") == head_revision(
            None
        )
        processes = [Database.from_settings(settings) for _ in range(2)]
        try:
            for violations in await asyncio.gather(*(verify(db) for db in processes * 2)):
                assert violations == []
        finally:
            for db in processes:
                await db.dispose()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
