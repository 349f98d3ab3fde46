"""Operations: health, readiness, metrics, the test clock and the billing run."""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import text

from app.clock import DatabaseTestClock
from app.deps import ClockDep, DbDep, ServiceDep, SettingsDep
from app.directory.schemas import IsoText
from app.errors import NotFound, NotReady, Unauthenticated
from app.operations import INTERNAL, declare
from app.problems import error_response

router = APIRouter()
log = logging.getLogger(__name__)

MetricsAuthorization = Annotated[str | None, Header(alias="Authorization", include_in_schema=False)]


class Health(BaseModel):
    status: Literal["ok"] = Field(description="Always `ok`: the process answers.")


class Readiness(BaseModel):
    status: Literal["ready"] = Field(description="Always `ready` (503 otherwise).")
    revision: str = Field(description="The database schema's migration revision.")


class TestClockOut(BaseModel):
    __test__ = False

    now: datetime = Field(description="The service's time from now on.")


@router.get("/healthz", tags=["operations"])
@declare(public=True)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", tags=["operations"], response_model=Readiness)
@declare(NotReady, public=True)
async def readyz(request: Request, db: DbDep) -> Any:
    """The database answers, takes writes (not a server in recovery) and its schema is at the
    migrations' head. Each reason to answer 503 is logged, in one line."""
    expected: str | None = request.app.state.head_revision
    try:
        async with db.read() as session:
            row = (await session.execute(_READINESS[db.is_sqlite])).first()
    except Exception as exc:
        log.warning("not ready: the database is unreachable: %s", _first_line(exc))
        return error_response(NotReady("The database is unreachable."))
    current, in_recovery = row if row is not None else (None, False)
    if in_recovery:
        # A standby (or a primary being restored) answers reads but refuses every write.
        log.warning("not ready: the database server is in recovery (a standby): no writes")
        return error_response(
            NotReady("The database server is in recovery (a standby): it takes no writes.")
        )
    if current != expected:
        log.warning("not ready: the schema is at %s, the service expects %s", current, expected)
        return error_response(
            NotReady(f"The schema is at {current}, the service expects {expected}: migrate.")
        )
    return {"status": "ready", "revision": current}


# The schema's revision and whether the server is in recovery, in one round trip.
_READINESS = {
    False: text("SELECT version_num, pg_is_in_recovery() FROM alembic_version"),
    True: text("SELECT version_num, false FROM alembic_version"),
}


def _first_line(exc: Exception) -> str:
    message = str(exc).strip()
    return f"{exc.__class__.__name__}: {message.splitlines()[0] if message else ''}"


@router.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
@declare(Unauthenticated, public=True)
async def metrics(settings: SettingsDep, authorization: MetricsAuthorization = None) -> Any:
    """Prometheus text: requests by method, route and status; latency; charges.

    With SEATS_METRICS_TOKEN set, only a scraper sending that bearer token reads them.
    """
    if settings.metrics_token is not None:
        scheme, _, token = (authorization or "").partition(" ")
        given = token.strip().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given, settings.metrics_token.encode()
        ):
            raise Unauthenticated("GET /metrics needs the metrics bearer token.")
    registry: CollectorRegistry = REGISTRY
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class TestClockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    __test__ = False

    # Bounded so that "now" plus a trial, a period or a retention window stays a valid date.
    now: Annotated[AwareDatetime, IsoText] = Field(
        ge=datetime(1970, 1, 1, tzinfo=UTC),
        lt=datetime(9000, 1, 1, tzinfo=UTC),
        description="An aware time from 1970 to before 9000.",
        examples=["2026-12-01T00:00:00Z"],
    )


@router.put(
    "/internal/v1/test-clock",
    tags=["internal: testing"],
    response_model=TestClockOut,
)
@declare(*INTERNAL)
async def set_test_clock(
    body: TestClockIn, _: ServiceDep, db: DbDep, settings: SettingsDep, clock: ClockDep
) -> dict[str, datetime]:
    """Move the test clock (only with SEATS_TEST_CLOCK=1; 404 otherwise)."""
    if not settings.test_clock or not isinstance(clock, DatabaseTestClock):
        raise NotFound("No such resource")
    async with db.transaction() as session:
        await clock.set(session, body.now)
    return {"now": body.now}
