"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp

from app.auth import TokenVerifier
from app.billing_run.routes import router as billing_run_router
from app.clock import Clock, DatabaseTestClock, SystemClock
from app.collection.routes import router as collection_router
from app.collection.service import Collector
from app.config import Settings, get_settings
from app.db import Database
from app.directory.routes import router as directory_router
from app.entitlements import AccessListener, EntitlementCache
from app.errors import PayloadTooLarge
from app.fast.routes import FastRoutes
from app.idempotency import IdempotencyStore
from app.ledger.routes import router as ledger_router
from app.manage import routes as manage
from app.observability import ServiceMiddleware, configure_logging
from app.openapi import build_openapi, operation_id
from app.ops import router as ops_router
from app.payments import make_gateway
from app.payments.faults import CrashingGateway
from app.problems import error_response, install_error_handlers, unexpected_error_response
from app.purchases.routes import router as purchases_router
from app.read_positions import ReadYourWrites
from app.schema import head_revision
from app.seats.routes import router as seats_router
from app.webhooks import outbox
from app.webhooks.routes import router as webhooks_router

DESCRIPTION = """
Seat management for **Conversations**, the team-inbox add-on sold per seat: an account buys
seats, an admin assigns them to users, who become **agents** of the unified inbox.

## How to authenticate

Every call but `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer <JWT>`
(press **Authorize** above and paste the token alone).

* **Users** (the inbox front end) call `/v1` with a token whose claims are `sub` (the user id),
  `account_id` and `exp`. The role (`primary_admin`, `admin`, `user`) comes from the service's
  directory, not from the token. Another account's path answers `404 not_found`.
* **Internal services** use a token with `scope: seats:internal` and no `account_id`: every
  `/internal` endpoint and every `GET` under `/v1`. Writes under `/v1` always need a user.
* Missing, malformed, expired or wrongly signed tokens answer `401 unauthenticated`.
* Locally, `seats token --account acme --user alice` or `seats token --internal` mints one.

## Conventions

* Money is an integer count of the currency's minor units (cents).
* Errors are RFC 9457 `application/problem+json` with a stable `code`; each operation lists the
  codes it may answer, and the fields they carry.
* `POST` endpoints that change state take an `Idempotency-Key` header (required for purchases):
  the same key and body replay the first answer with `Idempotent-Replayed: true`.
* Lists are `{"data": [...], "next_cursor": ...}`, newest first. A cursor that this service did
  not issue answers `422 validation_error`, and so does a key reused with another body
  (`422 idempotency_key_reused`): both on purpose.
* Every response carries `X-Request-ID` (the caller's own, when it sends a valid one).

Try the flow: create an account and its users through `/internal`, start a trial, assign
agents, quote, purchase.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.access_listener is not None:
            app.state.access_listener.start()
        yield
        if app.state.access_listener is not None:
            await app.state.access_listener.stop()
        await app.state.gateway.aclose()
        await app.state.db.dispose()

    # Swagger UI from the package's own files: no CDN, works with no internet. No ReDoc: its
    # bundle loads a logo from the internet.
    app = FastAPIOffline(
        redoc_url=None,
        title="Conversations seats",
        version="1.0.0",
        description=DESCRIPTION,
        static_url="/docs-assets",
        # Swagger UI's default sends the spec's URL to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        generate_unique_id_function=operation_id,
        lifespan=lifespan,
        # The redirect's Location would be built from the request's Host header (an open
        # redirect to any host): a path with a trailing slash is simply an unknown route.
        redirect_slashes=False,
    )
    db = Database.from_settings(settings)
    clock: Clock = DatabaseTestClock() if settings.test_clock else SystemClock()
    app.state.settings = settings
    app.state.db = db
    app.state.clock = clock
    app.state.verifier = TokenVerifier(settings)
    app.state.gateway = make_gateway(
        settings.payments_gateway,
        settings.payments_url,
        connect_timeout=settings.payments_connect_timeout,
        read_timeout=settings.payments_read_timeout,
    )
    if settings.fault_point:  # the crash tests' switch, never set in production
        app.state.gateway = CrashingGateway(app.state.gateway, settings.fault_point)
    app.state.idempotency = IdempotencyStore(
        db,
        lock_seconds=settings.idempotency_lock_seconds,
        retention_hours=settings.idempotency_retention_hours,
    )
    app.state.collector = Collector(db, app.state.gateway, clock, settings)
    app.state.head_revision = head_revision(settings.alembic_ini)
    # The cache serves only while its listener listens: never on SQLite, nor in an app whose
    # lifespan did not start (the in-process tests' app, unless a test starts it).
    app.state.entitlements = EntitlementCache(
        ttl=settings.access_cache_ttl_seconds, max_entries=settings.access_cache_entries
    )
    app.state.access_listener = (
        AccessListener(
            settings.listen_url,
            app.state.entitlements,
            positions=db.positions if db.replicas else None,
        )
        if settings.access_cache and not db.is_sqlite
        else None
    )

    install_error_handlers(app)
    outbox.install()
    for router in (
        seats_router,
        purchases_router,
        ledger_router,
        collection_router,
        directory_router,
        billing_run_router,
        webhooks_router,
        ops_router,
    ):
        app.include_router(router)
    manage.install(app)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]

    # From the outside in: ServiceMiddleware (so every answer carries the request id, a CORS
    # preflight too), then CORS, then (with standbys) ReadYourWrites, then the agent check's and
    # the seat writes' own routes (app/fast/routes.py), then FastAPI's. The answers
    # ServiceMiddleware makes itself (the 500 of an unexpected error, the 413 of a declared
    # oversized body) go through a CORS layer of their own, so that every answer gets the CORS
    # headers, or a browser shows an opaque CORS failure instead of the problem body.
    app.add_middleware(FastRoutes, routes=seats_router.routes)
    if db.replicas:
        # Read your writes across workers and instances: the position of each write's commit.
        app.add_middleware(ReadYourWrites, db=db)
    wrap_answer = None
    if settings.cors_origins:
        origins = settings.cors_origins

        def with_cors(inner: ASGIApp) -> ASGIApp:
            return CORSMiddleware(
                inner,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "X-Request-ID",
                    "Seats-Read-Position",
                ],
                expose_headers=[
                    "X-Request-ID",
                    "Idempotent-Replayed",
                    "Retry-After",
                    "Seats-Read-Position",
                ],
            )

        app.add_middleware(with_cors)
        wrap_answer = with_cors
    app.add_middleware(
        ServiceMiddleware,
        on_error=unexpected_error_response,
        too_large=lambda: error_response(PayloadTooLarge()),
        max_body_bytes=settings.max_body_bytes,
        access_log_sample=settings.access_log_sample,
        wrap_answer=wrap_answer,
    )
    return app
