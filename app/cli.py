"""The ``seats`` command: serve, migrate, token, verify, billing run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from dataclasses import asdict
from datetime import timedelta

from alembic import command
from alembic.config import Config

from app.config import Settings, get_settings


def migrate(settings: Settings) -> None:
    """Upgrade the database to the migrations' head."""
    cfg = Config(str(settings.alembic_ini))
    cfg.attributes["url"] = settings.database_url
    cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, "head")


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from app.observability import configure_logging

    configure_logging(settings.log_level)
    migrate(settings)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker process counts its own requests; /metrics adds them up from here.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="seats-metrics-")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
    )


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
    from app.main import create_app
    from app.renewals.service import run_billing
    from app.seats.purchase import Payments

    async def run() -> dict[str, object]:
        app = create_app(settings)
        state = app.state
        try:
            deps = Payments(state.db, state.gateway, state.idempotency, state.clock, settings)
            return asdict(await run_billing(deps))
        finally:
            await state.gateway.aclose()
            await state.db.dispose()

    report = asyncio.run(run())
    print(json.dumps(report, indent=2))
    if report["errors"]:
        sys.exit(1)


def _verify(settings: Settings) -> None:
    from app.db import Database
    from app.verify import CHECKS, verify

    async def run() -> list[str]:
        db = Database(settings.database_url)
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
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1")

    sub.add_parser("migrate", help="upgrade the database to the latest schema")

    token = sub.add_parser("token", help="mint a JWT with the configured key")
    token.add_argument("--account", help="the user's account id")
    token.add_argument("--user", help="the user id (sub)")
    token.add_argument("--internal", action="store_true", help="a service token")
    token.add_argument("--subject", help="the service's name, with --internal")
    token.add_argument("--ttl-minutes", type=int, default=60)

    sub.add_parser("verify", help="check every ledger and seat invariant in SQL")

    billing = sub.add_parser("billing", help="billing operations")
    billing_sub = billing.add_subparsers(dest="billing_command", required=True)
    billing_sub.add_parser("run", help="process what is due now (for cron)")

    webhooks = sub.add_parser("webhooks", help="webhook operations")
    webhooks_sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    webhooks_sub.add_parser("deliver", help="send queued webhooks until SIGTERM (a worker)")

    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValueError as exc:
        sys.exit(f"seats: invalid configuration: {exc}")
    if args.command == "serve":
        _serve(args, settings)
    elif args.command == "migrate":
        migrate(settings)
    elif args.command == "token":
        _token(args, settings)
    elif args.command == "verify":
        _verify(settings)
    elif args.command == "billing":
        _billing_run(settings)
    elif args.command == "webhooks":
        _webhooks_deliver(settings)


if __name__ == "__main__":
    main()
