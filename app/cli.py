"""The ``seats`` command: serve, migrate, token, verify, billing run, demo."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict
from datetime import timedelta

from alembic import command
from sqlalchemy.exc import DBAPIError

from app.config import Settings, get_settings
from app.db import Database
from app.directory.service import PricesMissing, check_prices_cover_accounts
from app.manage.demo import demo_settings
from app.roles import RoleError
from app.schema import SchemaNotAtHead, alembic_config, check_schema_at_head

# SEATS_HTTP_PARSER: the protocol class uvicorn serves with (both bound the headers).
HTTP_PROTOCOLS = {"h11": "h11", "httptools": "app.fast.http:BoundedHttpToolsProtocol"}


def migrate(settings: Settings) -> None:
    """Upgrade the database to the migrations' head, then grant the runtime role its rights."""
    cfg = alembic_config(settings.alembic_ini)
    cfg.attributes["url"] = settings.database_url
    cfg.attributes["pooler"] = settings.database_pooler
    cfg.attributes["configure_logging"] = False
    cfg.attributes["app_role"] = settings.database_app_role
    command.upgrade(cfg, "head")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def startup_warnings(settings: Settings) -> list[str]:
    """What an operator must not miss in the logs: test-only switches that are on."""
    warnings = []
    if settings.test_clock:
        warnings.append(
            "SEATS_TEST_CLOCK=1: any service token can move the service's clock "
            "(PUT /internal/v1/test-clock). Never in production."
        )
    if settings.fault_point:
        warnings.append(
            f"SEATS_FAULT_POINT={settings.fault_point}: the process kills itself at that "
            "point. Never in production."
        )
    if settings.dev:
        warnings.append("SEATS_DEV=1: development mode (a short JWT secret is accepted).")
    return warnings


async def _behind_pooler(settings: Settings) -> bool:
    db = Database.from_settings(settings)
    try:
        return await db.behind_pooler()
    except (DBAPIError, OSError):
        return False  # the service's own start says what is wrong with the database
    finally:
        await db.dispose()


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from app.observability import configure_logging

    configure_logging(settings.log_level)
    if settings.dev and not is_loopback(args.host):
        sys.exit(
            f"seats serve: refusing SEATS_DEV=1 on {args.host}: development mode (short "
            "secrets) only binds a loopback address such as 127.0.0.1"
        )
    for warning in startup_warnings(settings):
        logging.getLogger("app.cli").warning("!!! %s", warning)
    if args.no_migrate:
        # The runtime role cannot migrate (no DDL): it only checks that the owner did.
        try:
            asyncio.run(
                check_schema_at_head(
                    settings.database_url, settings.alembic_ini, pooler=settings.database_pooler
                )
            )
        except SchemaNotAtHead as exc:
            sys.exit(f"seats serve: refusing to serve: {exc}")
    else:
        _migrate_or_exit(settings)
    try:
        asyncio.run(_check_prices(settings))
    except PricesMissing as exc:
        sys.exit(f"seats serve: refusing to serve: {exc}")
    if settings.database_pooler == "none" and asyncio.run(_behind_pooler(settings)):
        logging.getLogger("app.cli").warning(
            "!!! SEATS_DATABASE_URL answers through a pooler: unless it maps prepared "
            "statements (PgBouncer 1.21+ with max_prepared_statements > 0, or session mode), "
            "set SEATS_DATABASE_POOLER=transaction"
        )
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker process counts its own requests; /metrics adds them up from here.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="seats-metrics-")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port or settings.port,
        workers=args.workers,
        loop="uvloop",
        http=HTTP_PROTOCOLS[settings.http_parser],
        # Bounded requests and connections: a huge or endless header, or thousands of idle
        # connections, cannot exhaust a worker (see the README for the proxy in front).
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.limit_concurrency,
        timeout_keep_alive=settings.timeout_keep_alive,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
    )


async def _check_prices(settings: Settings) -> None:
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            await check_prices_cover_accounts(session, settings)
    finally:
        await db.dispose()


def _migrate_or_exit(settings: Settings) -> None:
    try:
        migrate(settings)
    except RoleError as exc:
        sys.exit(f"seats migrate: {exc}")


def _token(args: argparse.Namespace, settings: Settings) -> None:
    from app.auth import mint_token

    ttl = timedelta(minutes=args.ttl_minutes)
    if args.internal:
        print(mint_token(settings, subject=args.subject or "operator", ttl=ttl))
        return
    if not (args.account and args.user):
        sys.exit("seats token: give --account and --user, or --internal")
    print(mint_token(settings, subject=args.user, account_id=args.account, ttl=ttl))


def _billing_run(settings: Settings) -> None:
    from app.billing_run.run import BillingRun, run_billing
    from app.main import create_app
    from app.observability import configure_logging

    configure_logging(settings.log_level)

    async def run() -> dict[str, object]:
        app = create_app(settings)
        state = app.state
        try:
            deps = BillingRun(state.db, state.collector, state.idempotency, state.clock, settings)
            return asdict(await run_billing(deps))
        finally:
            await state.gateway.aclose()
            await state.db.dispose()

    report = asyncio.run(run())
    print(json.dumps(report, indent=2))
    if report["needs_operator"]:
        sys.exit(1)


def _demo(args: argparse.Namespace, settings: Settings) -> None:
    from app.clock import DatabaseTestClock, SystemClock
    from app.db import Database
    from app.manage.demo import NotDevMode, demo_exists, page_url, seed_demo

    async def run() -> tuple[bool, bool]:
        db = Database.from_settings(settings)
        clock = DatabaseTestClock() if settings.test_clock else SystemClock()
        try:
            return await seed_demo(db, clock, settings), await demo_exists(db)
        finally:
            await db.dispose()

    migrate(settings)
    try:
        created, exists = asyncio.run(run())
    except NotDevMode as exc:
        sys.exit(f"seats demo: {exc}")
    if not exists:
        print("The database already has accounts: no demo account was created.")
        return
    print("Demo account created." if created else "Demo account already there.")
    base_url = args.base_url or f"http://127.0.0.1:{settings.port}"
    print("Manage Seats, as the demo's primary admin:")
    print(f"  {page_url(settings, base_url, timedelta(minutes=args.ttl_minutes))}")


def _verify(settings: Settings) -> None:
    from app.db import Database
    from app.verify import CHECKS, verify

    async def run() -> list[str]:
        db = Database.from_settings(settings)
        try:
            return [str(v) for v in await verify(db)]
        finally:
            await db.dispose()

    failures = asyncio.run(run())
    for line in failures:
        print(line)
    print(f"{len(CHECKS) - len(failures)} of {len(CHECKS)} invariants hold")
    if failures:
        sys.exit(1)


def _webhooks_deliver(settings: Settings) -> None:
    from app.main import create_app
    from app.observability import configure_logging
    from app.webhooks.worker import run_worker

    configure_logging(settings.log_level)

    async def run() -> None:
        state = create_app(settings).state
        try:
            await run_worker(state.db, state.clock, settings)
        finally:
            await state.gateway.aclose()
            await state.db.dispose()

    if settings.webhook_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.webhook_metrics_port, settings.webhook_metrics_host)
    asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seats", description="Conversations seats service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate to head, then serve HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, help="default: SEATS_PORT, else PORT, else 8000")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not migrate (the runtime role cannot); refuse to start unless at head",
    )

    sub.add_parser("migrate", help="upgrade the database to the latest schema")

    token = sub.add_parser("token", help="mint a JWT with the configured key")
    token.add_argument("--account", help="the user's account id")
    token.add_argument("--user", help="the user id (sub)")
    token.add_argument("--internal", action="store_true", help="a service token")
    token.add_argument("--subject", help="the service's name, with --internal")
    token.add_argument("--ttl-minutes", type=int, default=60)

    sub.add_parser("verify", help="check every ledger and seat invariant in SQL")

    demo = sub.add_parser(
        "demo", help="dev mode: a demo account in an empty database, and its page's URL"
    )
    demo.add_argument(
        "--base-url", help="the server's URL; default: http://127.0.0.1 on `seats serve`'s port"
    )
    demo.add_argument("--ttl-minutes", type=int, default=12 * 60)

    billing = sub.add_parser("billing", help="billing operations")
    billing_sub = billing.add_subparsers(dest="billing_command", required=True)
    billing_sub.add_parser("run", help="process what is due now (for cron)")

    webhooks = sub.add_parser("webhooks", help="webhook operations")
    webhooks_sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    webhooks_sub.add_parser("deliver", help="send queued webhooks until SIGTERM (a worker)")

    args = parser.parse_args(argv)
    try:
        settings = demo_settings() if args.command == "demo" else get_settings()
    except ValueError as exc:
        sys.exit(f"seats: invalid configuration: {exc}")
    if args.command == "serve":
        _serve(args, settings)
    elif args.command == "migrate":
        _migrate_or_exit(settings)
    elif args.command == "token":
        _token(args, settings)
    elif args.command == "verify":
        _verify(settings)
    elif args.command == "demo":
        _demo(args, settings)
    elif args.command == "billing":
        _billing_run(settings)
    elif args.command == "webhooks":
        _webhooks_deliver(settings)


if __name__ == "__main__":
    main()
