"""SPEC §7: a deadlock or serialization failure is retried once inside the request, and
otherwise answers ``503 database_conflict`` with ``Retry-After``, never ``500``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.directory.routes import router as directory_router
from app.ledger.routes import router as ledger_router
from app.problems import install_error_handlers, is_database_conflict
from app.retry import RetryOnConflictRoute
from app.seats.routes import router as seats_router
from tests.conftest import PG_URL, problem


class DriverError(Exception):
    """Shaped like asyncpg's errors as SQLAlchemy's asyncpg adapter exposes them."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def db_error(sqlstate: str) -> DBAPIError:
    return DBAPIError("COMMIT", None, DriverError(sqlstate))


class Script:
    """What the endpoint and its teardown raise, attempt by attempt."""

    def __init__(self) -> None:
        self.endpoint: list[BaseException | None] = []
        self.teardown: list[BaseException | None] = []
        self.runs = 0
        self.closed = 0


def script_of(request: Request) -> Script:
    script: Script = request.app.state.script
    return script


async def session_like(request: Request) -> AsyncIterator[None]:
    """Like SessionDep: what it does after ``yield`` (the commit) runs after the endpoint."""
    script = script_of(request)
    try:
        yield None
    except BaseException:
        script.closed += 1  # a rollback
        raise
    script.closed += 1
    failure = script.teardown.pop(0) if script.teardown else None
    if failure is not None:
        raise failure


router = APIRouter(route_class=RetryOnConflictRoute)


@router.post("/work")
async def work(
    request: Request,
    body: dict[str, Any],
    _: Annotated[None, Depends(session_like, scope="function")],
) -> dict[str, Any]:
    script = script_of(request)
    script.runs += 1
    failure = script.endpoint.pop(0) if script.endpoint else None
    if failure is not None:
        raise failure
    return {"runs": script.runs, "body": body}


def make_app(script: Script) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.script = script
    return app


async def post(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/work", json={"seats": 5})


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
async def test_s7_a_conflict_in_the_endpoint_is_retried_once(sqlstate: str) -> None:
    script = Script()
    script.endpoint = [db_error(sqlstate)]
    response = await post(make_app(script))
    assert response.status_code == 200, response.text
    assert response.json() == {"runs": 2, "body": {"seats": 5}}  # the body is read again
    assert script.closed == 2  # the first attempt's dependencies were closed (rolled back)


async def test_s7_a_conflict_at_commit_is_retried_once() -> None:
    script = Script()
    script.teardown = [db_error("40P01")]
    response = await post(make_app(script))
    assert response.status_code == 200, response.text
    assert (script.runs, script.closed) == (2, 2)


async def test_s7_a_second_conflict_is_503_database_conflict() -> None:
    script = Script()
    script.endpoint = [db_error("40P01"), db_error("40001")]
    response = await post(make_app(script))
    body = problem(response, 503, "database_conflict")
    assert response.headers["retry-after"] == "1"
    assert "Traceback" not in body["detail"]
    assert script.runs == 2  # once, then once more: never a loop


async def test_s7_a_second_conflict_at_commit_is_503_database_conflict() -> None:
    script = Script()
    script.teardown = [db_error("40001"), db_error("40001")]
    response = await post(make_app(script))
    problem(response, 503, "database_conflict")
    assert script.runs == 2


@pytest.mark.parametrize(
    "error",
    [ValueError("a bug"), IntegrityError("INSERT", None, DriverError("23505"))],
    ids=["bug", "unique-violation"],
)
async def test_other_errors_are_not_retried(error: Exception) -> None:
    script = Script()
    script.endpoint = [error]
    response = await post(make_app(script))
    problem(response, 500, "internal_error")
    assert script.runs == 1


def test_conflicts_are_recognised_however_they_are_wrapped() -> None:
    assert is_database_conflict(db_error("40P01"))
    assert is_database_conflict(DriverError("40001"))
    psycopg_like = Exception("serialization failure")
    psycopg_like.pgcode = "40001"  # type: ignore[attr-defined]
    assert is_database_conflict(DBAPIError("SELECT 1", None, psycopg_like))
    try:
        try:
            raise db_error("40P01")
        except DBAPIError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert is_database_conflict(outer)
    assert not is_database_conflict(db_error("23505"))
    assert not is_database_conflict(ValueError("40P01"))


# The agent check is one SELECT outside any transaction: no deadlock or serialization failure
# can abort it, so it skips the retry wrapper (its lost connection answers 503 on its own:
# tests/faults). Every other route opens a transaction and retries.
ONE_STATEMENT_READS = {"/v1/accounts/{account_id}/conversations/agents/{user_id}": {"GET"}}


def _is_one_statement_read(route: object) -> bool:
    path, methods = getattr(route, "path", None), getattr(route, "methods", set())
    return path in ONE_STATEMENT_READS and methods <= ONE_STATEMENT_READS[path]


def test_the_routers_of_the_service_retry_conflicts() -> None:
    for router in (seats_router, directory_router, ledger_router):
        assert router.routes
        for route in router.routes:
            if not _is_one_statement_read(route):
                assert isinstance(route, RetryOnConflictRoute), route
    exempt = [r for r in seats_router.routes if _is_one_statement_read(r)]
    assert len(exempt) == 1 and not isinstance(exempt[0], RetryOnConflictRoute)


async def pg_session(request: Request) -> AsyncIterator[AsyncSession]:
    """SessionDep's twin over the test's own database."""
    db: Database = request.app.state.db
    async with db.transaction() as session:
        yield session


pg_router = APIRouter(route_class=RetryOnConflictRoute)


@pg_router.post("/work")
async def pg_work(
    request: Request, session: Annotated[AsyncSession, Depends(pg_session, scope="function")]
) -> dict[str, int]:
    script = script_of(request)
    script.runs += 1
    if script.runs == 1:
        # PostgreSQL itself aborts the first attempt's transaction with a serialization failure.
        await session.execute(
            text("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
        )
    return {"runs": script.runs, "one": int(await session.scalar(text("SELECT 1")) or 0)}


@pytest.mark.skipif(not PG_URL, reason="a real PostgreSQL error")
async def test_s7_a_real_serialization_failure_is_retried_once(migrated_template: str) -> None:
    assert PG_URL
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(pg_router)
    app.state.script = Script()
    app.state.db = Database(PG_URL)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post("/work")
    finally:
        await app.state.db.dispose()
    assert response.status_code == 200, response.text
    assert response.json() == {"runs": 2, "one": 1}
