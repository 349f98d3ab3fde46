"""The raw baseline: a bare ASGI app on asyncpg doing what the service does, and no more.

Same statements as the service (the SQL text below is what ``bench/capture.py`` captured from
it, so ``bench/run`` checks this app's statements against ``bench/sql`` too), same transaction
shape and row locks, same JSON, same token check (HS256, with verified tokens kept until they
expire, as the service does). No framework, no ORM, no validation layer, no logs or metrics:
the fastest a Python endpoint doing this work can be on this machine.

Served by ``uvicorn bench.raw_app:app --workers 2 --loop uvloop --http httptools``.
Env: ``BENCH_PG_URL`` (postgresql://...), ``BENCH_SECRET`` (the HS256 key).
Routes: GET/PUT/DELETE .../agents/{user_id}, POST .../quotes, GET /healthz.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import jwt

from app.billing.periods import BillingCycle, Period
from app.billing.pricing import price_change
from app.ids import new_id
from app.seats.rules import PlanState, check_decrease_allowed, pricing_schedule
from app.seats.status import PlanStatus

HOT_READ = (
    "SELECT account_user_1.role, account_user_2.id IS NOT NULL AS anon_1, assignment.user_id "
    "IS NOT NULL AS anon_2, plan.status, plan.trial_ends_at FROM account LEFT OUTER JOIN "
    "account_user AS "
    "account_user_1 ON account_user_1.account_id = account.id AND account_user_1.id = "
    "$1::VARCHAR LEFT OUTER JOIN account_user AS account_user_2 ON account_user_2.account_id = "
    "account.id AND account_user_2.id = $2::VARCHAR LEFT OUTER JOIN assignment ON "
    "assignment.account_id = account.id AND assignment.user_id = $3::VARCHAR LEFT OUTER JOIN "
    "plan ON plan.account_id = account.id WHERE account.id = $4::VARCHAR"
)
ROLE = (
    "SELECT account_user.role FROM account_user WHERE account_user.account_id = $1::VARCHAR "
    "AND account_user.id = $2::VARCHAR"
)
LOCK_PLAN_AS = (
    "SELECT plan.status, plan.seats, plan.assigned, plan.trial_started_at, "
    "plan.trial_ends_at, plan.pending_seats, plan.period_start, plan.period_end, "
    "plan.billing_cycle, caller.role FROM plan LEFT OUTER JOIN account_user AS caller ON "
    "caller.account_id = plan.account_id AND caller.id = $1::VARCHAR WHERE plan.account_id = "
    "$2::VARCHAR FOR UPDATE OF plan"
)
TARGET = (
    "SELECT account_user.id AS user_id, assignment.assigned_at, assignment.assigned_by FROM "
    "account_user LEFT OUTER JOIN assignment ON assignment.account_id = "
    "account_user.account_id AND assignment.user_id = account_user.id WHERE "
    "account_user.account_id = $1::VARCHAR AND account_user.id = $2::VARCHAR"
)
ASSIGN = (
    "WITH target AS (SELECT account_user.id AS user_id, assignment.assigned_at AS "
    "assigned_at, assignment.assigned_by AS assigned_by FROM account_user LEFT OUTER JOIN "
    "assignment ON assignment.account_id = account_user.account_id AND assignment.user_id = "
    "account_user.id WHERE account_user.account_id = $2::VARCHAR AND account_user.id = "
    "$4::VARCHAR), taken AS (INSERT INTO assignment (account_id, user_id, assigned_at, "
    "assigned_by) SELECT $2::VARCHAR AS anon_1, target.user_id AS user_id, $1::TIMESTAMP WITH "
    "TIME ZONE AS anon_2, $3::VARCHAR AS anon_3 FROM target WHERE target.assigned_at IS NULL "
    "RETURNING assignment.user_id), counted AS (UPDATE plan SET assigned=(plan.assigned + 1), "
    "updated_at=$1::TIMESTAMP WITH TIME ZONE WHERE plan.account_id = $2::VARCHAR AND (EXISTS "
    "(SELECT taken.user_id FROM taken)) RETURNING plan.assigned), written_event AS (INSERT "
    "INTO event (id, account_id, type, actor, at, data) SELECT $5::VARCHAR AS anon_4, "
    "$2::VARCHAR AS anon_1, $6::VARCHAR AS anon_5, $3::VARCHAR AS anon_3, $1::TIMESTAMP WITH "
    "TIME ZONE AS anon_2, $7::JSON AS anon_6 FROM taken RETURNING event.id, event.type, "
    "event.at), queued AS (INSERT INTO webhook_delivery (endpoint_id, event_id, event_type, "
    "body, status, attempts, next_attempt_at, created_at) SELECT webhook_endpoint.id AS id, "
    "written_event.id AS id_1, written_event.type AS type, $8::VARCHAR AS anon_7, 'pending', "
    "0, written_event.at AS at, written_event.at AS at__1 FROM written_event JOIN "
    "webhook_endpoint ON webhook_endpoint.disabled IS false AND (webhook_endpoint.event_types "
    "IS NULL OR json_typeof(webhook_endpoint.event_types) = 'null' OR "
    "(CAST(webhook_endpoint.event_types AS JSONB) ? written_event.type))) SELECT "
    "target.user_id, target.assigned_at, target.assigned_by, EXISTS (SELECT taken.user_id "
    "FROM taken) AS taken FROM target"
)
RELEASE = (
    "WITH released AS (DELETE FROM assignment WHERE assignment.account_id = $2::VARCHAR AND "
    "assignment.user_id = $3::VARCHAR RETURNING assignment.user_id), counted AS (UPDATE plan "
    "SET assigned=(plan.assigned - 1), updated_at=$1::TIMESTAMP WITH TIME ZONE WHERE "
    "plan.account_id = $2::VARCHAR AND (EXISTS (SELECT released.user_id FROM released)) "
    "RETURNING plan.assigned), written_event AS (INSERT INTO event (id, account_id, type, "
    "actor, at, data) SELECT $4::VARCHAR AS anon_1, $2::VARCHAR AS anon_2, $5::VARCHAR AS "
    "anon_3, $6::VARCHAR AS anon_4, $1::TIMESTAMP WITH TIME ZONE AS anon_5, $7::JSON AS "
    "anon_6 FROM released RETURNING event.id, event.type, event.at), queued AS (INSERT INTO "
    "webhook_delivery (endpoint_id, event_id, event_type, body, status, attempts, "
    "next_attempt_at, created_at) SELECT webhook_endpoint.id AS id, written_event.id AS id_1, "
    "written_event.type AS type, $8::VARCHAR AS anon_7, 'pending', 0, written_event.at AS at, "
    "written_event.at AS at__1 FROM written_event JOIN webhook_endpoint ON "
    "webhook_endpoint.disabled IS false AND (webhook_endpoint.event_types IS NULL OR "
    "json_typeof(webhook_endpoint.event_types) = 'null' OR (CAST(webhook_endpoint.event_types "
    "AS JSONB) ? written_event.type))) SELECT EXISTS (SELECT released.user_id FROM released) "
    "AS released"
)
INSERT_QUOTE = (
    "INSERT INTO quote (id, account_id, current_seats, seats, unit_price, currency, "
    "billing_cycle, period_start, period_end, due_now, created_by, created_at, expires_at) "
    "VALUES ($1::VARCHAR, $2::VARCHAR, $3::BIGINT, $4::BIGINT, $5::BIGINT, $6::VARCHAR, "
    "$7::VARCHAR, $8::DATE, $9::DATE, $10::BIGINT, $11::VARCHAR, $12::TIMESTAMP WITH TIME "
    "ZONE, $13::TIMESTAMP WITH TIME ZONE)"
)
# The service reads the quote's plan and account in one statement, and trims old quotes.
PLAN_AND_ACCOUNT = (
    "SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, "
    "plan.trial_ends_at, plan.period_start, plan.period_end, plan.billing_cycle, "
    "plan.pending_invoice_id, plan.pending_seats, plan.created_at, "
    "plan.updated_at, account.id, account.name, account.billing_cycle AS billing_cycle_1, "
    "account.billing_anchor, account.payment_method, account.currency, account.created_at AS "
    "created_at_1, account.updated_at AS updated_at_1 FROM plan JOIN account ON account.id = "
    "plan.account_id WHERE plan.account_id = $1::VARCHAR"
)
TRIM_QUOTES = (
    "DELETE FROM quote WHERE quote.account_id = $1::VARCHAR AND (quote.id NOT IN (SELECT "
    "quote.id FROM quote WHERE quote.account_id = $2::VARCHAR ORDER BY quote.created_at DESC, "
    "quote.id DESC LIMIT $3::INTEGER)) RETURNING quote.id"
)
MAX_LIVE_QUOTES = 100
PRICE = 1900
PREFIX = "/v1/accounts/"

_pool: asyncpg.Pool | None = None
_secret = os.environ.get("BENCH_SECRET", "")
_tokens: dict[str, tuple[str, str | None, float]] = {}


class Problem(Exception):
    def __init__(self, status: int, code: str) -> None:
        self.status, self.code = status, code


def principal(headers: list[tuple[bytes, bytes]]) -> tuple[str, str | None]:
    auth = next((v for k, v in headers if k == b"authorization"), b"").decode()
    token = auth.removeprefix("Bearer ").strip()
    hit = _tokens.get(token)
    if hit is not None and time.time() < hit[2]:
        return hit[0], hit[1]
    try:
        claims = jwt.decode(
            token, _secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.InvalidTokenError as exc:
        raise Problem(401, "unauthenticated") from exc
    _tokens[token] = (claims["sub"], claims.get("account_id"), float(claims["exp"]))
    return claims["sub"], claims.get("account_id")


def ts(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def role_of(conn: asyncpg.Connection, account: str, sub: str, scope: str | None) -> str:
    if scope != account:
        raise Problem(404, "not_found")
    role = await conn.fetchval(ROLE, account, sub)
    if role is None:
        raise Problem(403, "unknown_user")
    return str(role)


async def check_agent(account: str, user: str, sub: str, scope: str | None) -> tuple[int, Any]:
    if scope != account:
        raise Problem(404, "not_found")
    assert _pool is not None
    row = await _pool.fetchrow(HOT_READ, sub, user, user, account)
    if row is None or row[0] is None:
        raise Problem(403, "unknown_user")
    if not row[1]:
        raise Problem(404, "user_not_found")
    active = row[2] and row[3] is not None and PlanStatus(row[3]).grants_access
    if row[3] == PlanStatus.TRIALING and row[4] is not None:
        active = active and datetime.now(UTC) < row[4]  # R10: the trial ends exactly then
    return 200, {"user_id": user, "agent": row[2], "active": active}


async def locked_plan_as_admin(
    conn: asyncpg.Connection, account: str, sub: str, scope: str | None
) -> asyncpg.Record:
    """The plan, locked, and the caller's role in one statement; the caller must be an admin."""
    if scope != account:
        raise Problem(404, "not_found")
    plan: asyncpg.Record | None = await conn.fetchrow(LOCK_PLAN_AS, sub, account)
    if plan is None or plan["role"] is None:
        raise Problem(403, "unknown_user")
    if plan["role"] not in ("admin", "primary_admin"):
        raise Problem(403, "not_admin")
    return plan


def webhook_body(event_id: str, type: str, account: str, now: datetime, data: Any) -> str:
    body = {"id": event_id, "type": type, "account_id": account, "at": ts(now), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


async def assign(account: str, user: str, sub: str, scope: str | None) -> tuple[int, Any]:
    assert _pool is not None
    now = datetime.now(UTC)
    actor = f"user:{sub}"
    async with _pool.acquire() as conn, conn.transaction(isolation="read_committed"):
        plan = await locked_plan_as_admin(conn, account, sub, scope)
        refusal = None
        if plan["status"] not in ("trialing", "active", "past_due"):
            refusal = "no_active_plan"
        elif plan["assigned"] >= plan["seats"]:
            refusal = "no_empty_seat"
        if refusal is not None:
            found = await conn.fetchrow(TARGET, account, user)
            taken = False
        else:
            data = {
                "user_id": user,
                "assigned_before": plan["assigned"],
                "assigned_after": plan["assigned"] + 1,
            }
            event_id, text = new_id("evt"), json.dumps(data)
            body = webhook_body(event_id, "agent.assigned", account, now, data)
            args = (now, account, actor, user, event_id, "agent.assigned", text, body)
            found = await conn.fetchrow(ASSIGN, *args)
            taken = found is not None and found["taken"]
        if found is None:
            raise Problem(404, "user_not_found")
        if found["assigned_at"] is not None:
            at, by = ts(found["assigned_at"]), found["assigned_by"]
            return 200, {"user_id": user, "assigned_at": at, "assigned_by": by}
        if not taken:
            raise Problem(409, refusal or "no_empty_seat")
    return 201, {"user_id": user, "assigned_at": ts(now), "assigned_by": actor}


async def unassign(account: str, user: str, sub: str, scope: str | None) -> tuple[int, Any]:
    assert _pool is not None
    now = datetime.now(UTC)
    async with _pool.acquire() as conn, conn.transaction(isolation="read_committed"):
        plan = await locked_plan_as_admin(conn, account, sub, scope)
        data = {
            "user_id": user,
            "assigned_before": plan["assigned"],
            "assigned_after": plan["assigned"] - 1,
        }
        event_id, text = new_id("evt"), json.dumps(data)
        body = webhook_body(event_id, "agent.unassigned", account, now, data)
        args = (now, account, user, event_id, "agent.unassigned", f"user:{sub}", text, body)
        if not await conn.fetchval(RELEASE, *args):
            raise Problem(404, "not_an_agent")
    return 204, None


async def quote(account: str, sub: str, scope: str | None, body: bytes) -> tuple[int, Any]:
    assert _pool is not None
    try:
        seats = json.loads(body)["seats"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Problem(422, "validation_failed") from exc
    if not isinstance(seats, int) or seats < 0:
        raise Problem(422, "validation_failed")
    async with _pool.acquire() as conn:
        role = await role_of(conn, account, sub, scope)  # one statement: no transaction
        if role not in ("admin", "primary_admin"):
            raise Problem(403, "not_admin")
        async with conn.transaction(isolation="read_committed"):
            now = datetime.now(UTC)
            plan = acc = await conn.fetchrow(PLAN_AND_ACCOUNT, account)
            period = None
            if plan["period_start"] is not None:
                period = Period(plan["period_start"], plan["period_end"])
            state = PlanState(
                status=PlanStatus(plan["status"]),
                seats=plan["seats"],
                assigned=plan["assigned"],
                trial_used=plan["trial_started_at"] is not None,
                pending_seats=plan["pending_seats"],
                period=period,
            )
            cycle = BillingCycle(acc["billing_cycle_1"])  # the account's, not the plan's
            today: date = now.date()
            p, cycle = pricing_schedule(
                state, anchor=acc["billing_anchor"], cycle=cycle, today=today
            )
            change = price_change(
                current_seats=plan["seats"],
                seats=seats,
                paid_seats=state.paid_seats,
                unit_price=PRICE,
                cycle=cycle,
                period=p,
                today=today,
            )
            quote_id, expires = new_id("quo"), now + timedelta(minutes=15)
            await conn.execute(
                INSERT_QUOTE,
                quote_id,
                account,
                plan["seats"],
                seats,
                PRICE,
                acc["currency"],
                cycle.value,
                p.start,
                p.end,
                change.due_now,
                f"user:{sub}",
                now,
                expires,
            )
            await conn.fetch(TRIM_QUOTES, account, account, MAX_LIVE_QUOTES)
    pr = change.proration
    return 201, {
        "id": quote_id,
        "expires_at": ts(expires),
        "current_seats": plan["seats"],
        "seats": seats,
        "change": change.change,
        "currency": acc["currency"],
        "unit_price": PRICE,
        "billing_cycle": cycle.value,
        "monthly_total": change.monthly_total,
        "cycle_total": change.cycle_total,
        "due_now": change.due_now,
        "proration": {
            "period_start": pr.period_start.isoformat(),
            "period_end": pr.period_end.isoformat(),
            "days_remaining": pr.days_remaining,
            "days_in_period": pr.days_in_period,
        },
        "allowed": check_decrease_allowed(state, seats),
        "assigned": plan["assigned"],
    }


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


async def read_body(receive: Any) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def handle(scope: dict[str, Any], receive: Any) -> tuple[int, Any]:
    path, method = scope["path"], scope["method"]
    if path == "/healthz":
        return 200, {"status": "ok"}
    parts = path.removeprefix(PREFIX).split("/")
    if not path.startswith(PREFIX) or len(parts) < 3 or parts[1] != "conversations":
        raise Problem(404, "not_found")
    account = parts[0]
    sub, token_account = principal(scope["headers"])
    if len(parts) == 4 and parts[2] == "agents":
        action = {"GET": check_agent, "PUT": assign, "DELETE": unassign}.get(method)
        if action is not None:
            return await action(account, parts[3], sub, token_account)
    if len(parts) == 3 and parts[2] == "quotes" and method == "POST":
        return await quote(account, sub, token_account, await read_body(receive))
    raise Problem(404, "not_found")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _pool = await asyncpg.create_pool(
                    os.environ["BENCH_PG_URL"],
                    min_size=20,
                    max_size=20,
                    server_settings={"application_name": "raw"},
                    # No reset query on release (asyncpg's default is one more round trip);
                    # SQLAlchemy only rolls back an open transaction, and ours are closed.
                    reset=_no_reset,
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    try:
        status, body = await handle(scope, receive)
        content_type = b"application/json"
    except Problem as p:
        status, body = p.status, {"status": p.status, "code": p.code}
        content_type = b"application/problem+json"
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
    # As the service does: echo the caller's request id (the bench's wrk script relies on it).
    headers += [(k, v) for k, v in scope["headers"] if k == b"x-request-id"]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
