"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app.auth import TokenVerifier
from app.clock import Clock, DatabaseTestClock, SystemClock
from app.config import Settings, get_settings
from app.db import Database
from app.directory.routes import router as directory_router
from app.errors import (
    PayloadTooLarge,
    Problem,
    error_response,
    install_error_handlers,
    unexpected_error_response,
)
from app.idempotency import IdempotencyStore
from app.ledger.routes import router as ledger_router
from app.observability import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    configure_logging,
)
from app.ops import head_revision
from app.ops import router as ops_router
from app.payments import make_gateway
from app.seats.routes import router as seats_router
from app.webhooks import outbox
from app.webhooks.routes import router as webhooks_router

DESCRIPTION = """
Seat management for **Conversations**, the team-inbox add-on sold per seat.

* Users call `/v1` with `Authorization: Bearer <JWT>` (claims `sub`, `account_id`, `exp`).
* Internal services use a JWT with `scope: seats:internal` (no `account_id`): every `/internal`
  endpoint and every `GET` under `/v1`.
* Money is integer minor units (cents). Errors are RFC 9457 `application/problem+json` with a
  stable `code`.
* State-changing POSTs take an `Idempotency-Key` header (required for purchases).

Try the flow: create an account and users through `/internal`, start a trial, quote, purchase.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.gateway.aclose()
        await app.state.db.dispose()

    app = FastAPI(
        title="Conversations seats",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
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
    app.state.idempotency = IdempotencyStore(
        db,
        lock_seconds=settings.idempotency_lock_seconds,
        retention_hours=settings.idempotency_retention_hours,
    )
    app.state.head_revision = head_revision(str(settings.alembic_ini))

    install_error_handlers(app)
    outbox.install()
    for router in (seats_router, ledger_router, directory_router, webhooks_router, ops_router):
        app.include_router(router)
    _install_docs(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed"],
        )
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        too_large=lambda: error_response(PayloadTooLarge()),
    )
    app.add_middleware(
        RequestContextMiddleware,
        on_error=unexpected_error_response,
        access_log_sample=settings.access_log_sample,
    )
    return app


def _install_docs(app: FastAPI) -> None:
    """Swagger UI from the installed package's files: no CDN, works with no internet."""
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Conversations seats - API docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
            # Swagger UI's default sends the spec's URL to validator.swagger.io for a badge.
            swagger_ui_parameters={"validatorUrl": None},
        )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with every error declared as problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    problem_ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path not in ("/healthz", "/readyz", "/metrics"):
                operation["security"] = [{"bearer": []}]
            if path.endswith("/purchases"):
                # Optional in the shared dependency, required here (400 without it).
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "Idempotency-Key":
                        parameter["required"] = True
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {"application/problem+json": problem_ref}
    app.openapi_schema = schema
    return schema
