"""What `make bench-billing` and tests/billing_run share: a loopback payments server, a fast seed
of paid accounts renewing on one day, the real `seats billing run` processes, and checks.

Everything here drives the service from the outside, as cron and an operator do: the rows are
inserted with plain SQL into the migrated schema (reflected from the database itself, so columns
the service adds later with a default need nothing here), the clock is moved through the HTTP
API, the billing run is the `seats billing run` command in its own process (its JSON report on
stdout, its exit status, its CPU from ``wait4``), and the results are read back with SQL and
from the payments server's own counts.

    with LoopbackPayments(latency=0.05) as payments:
        await reset_database(url)
        accounts = await seed_due_accounts(url, 2000)
        await set_test_clock(url, RENEWAL_RUN_AT)
        [run] = run_billing([billing_env(url, payments.url)])
        stats = await renewal_stats(url)
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.auth import mint_token
from app.config import Settings
from app.ledger.invoices import invoice_number
from app.main import create_app

SECRET = "billing-run-secret-" + "s" * 40
PRICE = 1900  # SEATS_PRICE_MONTHLY's default: the price the billing runs charge
ANCHOR = date(2026, 11, 1)
PERIOD = (date(2026, 11, 1), date(2026, 12, 1))  # the seeded paid period, monthly
RENEWED = (date(2026, 12, 1), date(2027, 1, 1))  # the period every seeded account renews into
RENEWAL_RUN_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the test clock of the billing run
SEED_ACTOR = "service:billing-seed"
SEEDED_AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
CHARGE_FIELDS = ("payment_method", "amount", "currency", "description")


# --- the payments server -------------------------------------------------------------------


class LoopbackPayments:
    """The platform's payments service on 127.0.0.1: uvicorn in a background thread.

    The contract of ``tests/payments_server.py`` (``POST /charges`` with an ``Idempotency-Key``;
    201 ``{"id", "status": "succeeded"}``; 402 for payment methods starting with ``pm_decline``;
    the stored answer replayed for a key seen before, 422 if its request differs), answering
    each charge after ``latency`` seconds, as a card processor does. Being asyncio, any number
    of charges wait at once, so the latency bounds a sequential caller and not a concurrent one.

    It counts what a billing run must get right: calls per key, a key arriving while the same
    key is still being answered (two senders at once), and the most charges in flight at once.
    """

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        # Payment methods charged with an id longer than any column holds (200 characters):
        # a success the service cannot record, the item that raises in a billing run.
        self.overlong_id_methods: set[str] = set()
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = {}
        self._charges: list[dict[str, Any]] = []
        self._calls: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._overlaps: Counter[str] = Counter()
        self._now_in_flight = 0
        self.max_in_flight = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # --- lifecycle

    def start(self) -> LoopbackPayments:
        """Listen on a free loopback port; return once it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            access_log=False,
            backlog=4096,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"loopback-payments:{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the loopback payments server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> LoopbackPayments:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # --- what happened

    def reset(self) -> None:
        """Forget every key, charge and count (between two phases of the bench)."""
        with self._lock:
            self._answers.clear()
            self._charges.clear()
            self._calls.clear()
            self._overlaps.clear()
            self.max_in_flight = 0

    @property
    def charges(self) -> list[dict[str, Any]]:
        """Every charge captured, oldest first: ``id``, ``idempotency_key`` and the request."""
        with self._lock:
            return [dict(c) for c in self._charges]

    @property
    def calls(self) -> Counter[str]:
        """``POST /charges`` received per idempotency key (replays included)."""
        with self._lock:
            return Counter(self._calls)

    @property
    def total_calls(self) -> int:
        with self._lock:
            return sum(self._calls.values())

    def keys_sent_more_than_once(self) -> dict[str, int]:
        """Keys the server received more than once, with how many times."""
        return {k: n for k, n in self.calls.items() if n > 1}

    def keys_sent_concurrently(self) -> dict[str, int]:
        """Keys that arrived while a call with the same key was still being answered."""
        with self._lock:
            return dict(self._overlaps)

    # --- the ASGI application

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        if path != "/charges":
            return await _send_json(send, 404, {"code": "not_found"})
        if method == "GET":
            return await _send_json(send, 200, {"charges": self.charges})
        if method != "POST":
            return await _send_json(send, 405, {"code": "method_not_allowed"})
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("idempotency-key", "")
        if not key:
            return await _send_json(send, 400, {"code": "idempotency_key_required"})
        request = _parse_charge(body)
        if request is None:
            return await _send_json(send, 400, {"code": "invalid_request"})
        with self._lock:
            self._calls[key] += 1
            self._in_flight[key] += 1
            if self._in_flight[key] > 1:
                self._overlaps[key] += 1
            self._now_in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._now_in_flight)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            status, answer = self._charge(key, request)
        finally:
            with self._lock:
                self._in_flight[key] -= 1
                if not self._in_flight[key]:
                    del self._in_flight[key]
                self._now_in_flight -= 1
        await _send_json(send, status, answer)

    def _charge(self, key: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer from the idempotency store, or decide and store the answer: atomically."""
        with self._lock:
            stored = self._answers.get(key)
            if stored is not None:
                first, status, answer = stored
                if first != request:
                    return 422, {"code": "idempotency_key_reused"}
                return status, answer
            if request["payment_method"].startswith("pm_decline"):
                status, answer = 402, {"status": "declined", "reason": "card_declined"}
            else:
                charge_id = f"ch_{len(self._charges) + 1}"
                if request["payment_method"] in self.overlong_id_methods:
                    charge_id += "_" + "9" * 300
                charge = {"id": charge_id, "idempotency_key": key, **request}
                self._charges.append(charge)
                status, answer = 201, {"id": charge["id"], "status": "succeeded"}
            self._answers[key] = (request, status, answer)
            return status, answer


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _parse_charge(raw: bytes) -> dict[str, Any] | None:
    """The charge request's fields, or None when the body does not follow the contract."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict) or set(body) != set(CHARGE_FIELDS):
        return None
    amount = body["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return None
    if not all(isinstance(body[f], str) for f in ("payment_method", "currency", "description")):
        return None
    return body


# --- the database ----------------------------------------------------------------------------


def _engine(database_url: str) -> AsyncEngine:
    return create_async_engine(database_url)


async def _tables(engine: AsyncEngine, names: Sequence[str]) -> dict[str, Table]:
    """The tables as the migrations made them (reflected, not the service's models)."""
    metadata = MetaData()
    async with engine.connect() as conn:
        await conn.run_sync(lambda sync: metadata.reflect(sync, only=list(names)))
    return {name: metadata.tables[name] for name in names}


async def reset_database(database_url: str) -> None:
    """Empty every table but Alembic's (between the bench's phases)."""
    engine = _engine(database_url)
    try:
        metadata = MetaData()
        async with engine.connect() as conn:
            await conn.run_sync(lambda sync: metadata.reflect(sync))
        names = [t for t in metadata.tables if t != "alembic_version"]
        async with engine.begin() as conn:
            # The ledger refuses TRUNCATE to every role (R11); the bench's superuser skips the
            # triggers for this one transaction, as the test harness does.
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class SeededAccount:
    account_id: str
    seats: int

    @property
    def renewal_total(self) -> int:
        """What its monthly renewal must charge (R9: seats x price x 1 month)."""
        return self.seats * PRICE


async def seed_due_accounts(
    database_url: str,
    count: int,
    *,
    prefix: str = "acct",
    payment_method: str = "pm_card_visa",
) -> list[SeededAccount]:
    """``count`` accounts on an active monthly plan paid through 2026-12-01, all due that day.

    Each has a primary admin, 1 to 10 seats (so the renewals' amounts differ) and the paid
    purchase invoice, its line, its charge attempt and its event that bought those seats: the
    rows the service itself would have written, so that ``seats verify`` holds before the run.
    """
    accounts = [SeededAccount(f"{prefix}{i:05d}", 1 + i % 10) for i in range(count)]
    at = SEEDED_AT
    rows: dict[str, list[dict[str, Any]]] = {
        "account": [],
        "account_user": [],
        "plan": [],
        "invoice": [],
        "invoice_line": [],
        "invoice_counter": [],
        "charge_attempt": [],
        "charge_outcome": [],
        "event": [],
    }
    start, end = PERIOD
    for a in accounts:
        invoice_id = f"inv_seed_{a.account_id}"
        rows["account"].append(
            {
                "id": a.account_id,
                "name": f"Account {a.account_id}",
                "billing_cycle": "monthly",
                "billing_anchor": ANCHOR,
                "payment_method": payment_method,
                "currency": "USD",
                "created_at": at,
                "updated_at": at,
            }
        )
        rows["account_user"].append(
            {
                "account_id": a.account_id,
                "id": "owner",
                "email": f"owner@{a.account_id}.test",
                "name": "Owner",
                "role": "primary_admin",
                "created_at": at,
                "updated_at": at,
            }
        )
        rows["plan"].append(
            {
                "account_id": a.account_id,
                "status": "active",
                "seats": a.seats,
                "assigned": 0,
                "trial_started_at": None,
                "trial_ends_at": None,
                "period_start": start,
                "period_end": end,
                "billing_cycle": "monthly",
                "pending_invoice_id": None,
                "pending_seats": None,
                "created_at": at,
                "updated_at": at,
            }
        )
        rows["invoice"].append(
            {
                "id": invoice_id,
                "account_id": a.account_id,
                "sequence": 1,
                "number": invoice_number("INV", a.account_id, 1),
                "kind": "purchase",
                "status": "paid",
                "currency": "USD",
                "total": a.renewal_total,
                "seats": a.seats,
                "period_start": start,
                "period_end": end,
                "payment_method": payment_method,
                "request_key": None,
                "request_fingerprint": None,
                "billing_cycle": "monthly",
                "created_by": SEED_ACTOR,
                "created_at": at,
                "paid_at": at,
                "charge_id": f"ch_seed_{a.account_id}",
                "failure_reason": None,
            }
        )
        rows["invoice_counter"].append({"account_id": a.account_id, "last": 1})
        rows["invoice_line"].append(
            {
                "invoice_id": invoice_id,
                "position": 0,
                "description": f"{a.seats} Conversations seat(s), monthly, {start} to {end}",
                "quantity": a.seats,
                "unit_price": PRICE,
                "amount": a.renewal_total,
                "period_start": start,
                "period_end": end,
            }
        )
        rows["charge_attempt"].append(
            {
                "invoice_id": invoice_id,
                "number": 1,
                "operation": "charge",
                "gateway_key": invoice_id,
                "payment_method": payment_method,
                "amount": a.renewal_total,
                "currency": "USD",
                "created_by": SEED_ACTOR,
                "at": at,
                "sent_at": at,
            }
        )
        rows["charge_outcome"].append(
            {
                "invoice_id": invoice_id,
                "number": 1,
                "outcome": "succeeded",
                "reason": None,
                "charge_id": f"ch_seed_{a.account_id}",
                "at": at,
            }
        )
        rows["event"].append(
            {
                "id": f"evt_seed_{a.account_id}",
                "account_id": a.account_id,
                "type": "seats.purchased",
                "actor": SEED_ACTOR,
                "at": at,
                "data": {
                    "seats_before": 0,
                    "seats_after": a.seats,
                    "invoice_id": invoice_id,
                    "amount": a.renewal_total,
                },
            }
        )
    engine = _engine(database_url)
    try:
        tables = await _tables(engine, list(rows))
        async with engine.begin() as conn:
            for name, batch in rows.items():
                if batch:
                    await conn.execute(tables[name].insert(), batch)
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return accounts


async def set_test_clock(database_url: str, now: datetime) -> None:
    """Move the service's test clock through its API (``PUT /internal/v1/test-clock``)."""
    settings = service_settings(database_url)
    app = create_app(settings)
    token = mint_token(settings, subject="billing-bench")
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://seats") as client:
            r = await client.put(
                "/internal/v1/test-clock",
                json={"now": now.isoformat()},
                headers={"Authorization": f"Bearer {token}"},
            )
            r.raise_for_status()
    finally:
        await app.state.gateway.aclose()
        await app.state.db.dispose()


def service_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings of an in-process service on this database, with the test clock enabled."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "jwt_secret": SECRET,
        "test_clock": True,
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(**values)


@dataclass(frozen=True)
class RenewalStats:
    """The renewals into ``RENEWED`` as the database has them, for the seeded accounts."""

    due: int  # seeded accounts (all due)
    invoiced: int  # accounts with a renewal invoice for the period
    paid: int  # ... paid
    duplicated_periods: int  # (account, period) pairs invoiced more than once
    paid_by_charge: dict[str, int] = field(repr=False)  # charge id -> total of paid renewals
    plans_renewed: int = 0  # plans now paid through RENEWED's end

    def captured_equals_paid(self, payments: LoopbackPayments) -> bool:
        """Every charge the server captured is one paid renewal of that amount, and back."""
        return captured(payments) == self.paid_by_charge


async def renewal_stats(database_url: str) -> RenewalStats:
    """Count the renewals of the seeded accounts into ``RENEWED`` (SQL only)."""
    engine = _engine(database_url)
    seeded = "(SELECT account_id FROM invoice WHERE created_by = :seed)"
    params = {"seed": SEED_ACTOR, "start": RENEWED[0], "end": RENEWED[1]}
    try:
        async with engine.connect() as conn:
            due = await conn.scalar(
                text("SELECT COUNT(*) FROM invoice WHERE created_by = :seed"), params
            )
            per_account = (
                await conn.execute(
                    text(
                        "SELECT account_id, COUNT(*) AS n,"
                        " SUM(CASE WHEN status = 'paid' THEN 1 ELSE 0 END) AS paid"
                        " FROM invoice WHERE kind = 'renewal' AND period_start = :start"
                        f" AND account_id IN {seeded} GROUP BY account_id"
                    ),
                    params,
                )
            ).all()
            paid_rows = (
                await conn.execute(
                    text(
                        "SELECT charge_id, total FROM invoice WHERE kind = 'renewal'"
                        " AND status = 'paid' AND charge_id IS NOT NULL"
                    )
                )
            ).all()
            renewed = await conn.scalar(
                text(
                    f"SELECT COUNT(*) FROM plan WHERE period_end = :end AND account_id IN {seeded}"
                ),
                params,
            )
    finally:
        await engine.dispose()
    return RenewalStats(
        due=int(due or 0),
        invoiced=len(per_account),
        paid=sum(1 for row in per_account if row.paid),
        duplicated_periods=sum(1 for row in per_account if row.n > 1),
        paid_by_charge={row.charge_id: int(row.total) for row in paid_rows},
        plans_renewed=int(renewed or 0),
    )


async def paid_by_charge(database_url: str) -> dict[str, int]:
    """Every paid invoice the service made (not the seed's), as charge id -> total."""
    engine = _engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT charge_id, total FROM invoice WHERE status = 'paid'"
                        " AND created_by != :seed AND total > 0"
                    ),
                    {"seed": SEED_ACTOR},
                )
            ).all()
    finally:
        await engine.dispose()
    return {row.charge_id: int(row.total) for row in rows}


def captured(payments: LoopbackPayments) -> dict[str, int]:
    """What the payments server captured, as charge id -> amount."""
    return {c["id"]: c["amount"] for c in payments.charges}


# --- the billing run, as cron runs it ---------------------------------------------------------


def billing_env(database_url: str, payments_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `seats billing run` process: this database, the http gateway to
    ``payments_url``, the test clock; ``extra`` adds or overrides ``SEATS_*`` settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SEATS_") and key != "TEST_DATABASE_URL"
    }
    env.update(
        {
            "SEATS_DATABASE_URL": database_url,
            "SEATS_JWT_SECRET": SECRET,
            "SEATS_TEST_CLOCK": "1",
            "SEATS_PAYMENTS_GATEWAY": "http",
            "SEATS_PAYMENTS_URL": payments_url,
            "SEATS_LOG_LEVEL": "INFO",
            **extra,
        }
    )
    return env


def seats_command(*args: str) -> list[str]:
    """The installed `seats` command next to this interpreter, else ``python -m app.cli``."""
    script = Path(sys.executable).parent / "seats"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "app.cli", *args]


@dataclass
class RunResult:
    """One finished `seats billing run` process."""

    returncode: int
    stdout: str
    stderr: str
    started: float  # time.monotonic() at start
    finished: float  # ... at exit
    cpu_seconds: float  # user + system CPU of the process (wait4's rusage)

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    @property
    def report(self) -> dict[str, Any] | None:
        """The JSON report it printed, or None if stdout is not one JSON object."""
        try:
            value = json.loads(self.stdout)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def describe(self) -> str:
        """Exit status, report and the end of stderr: for assertion messages."""
        return (
            f"exit {self.returncode} after {self.elapsed:.1f}s\nstdout: {self.stdout[-3000:]}"
            f"\nstderr: {self.stderr[-3000:]}"
        )


def run_billing(envs: Sequence[Mapping[str, str]], *, timeout: float = 600) -> list[RunResult]:
    """Start one `seats billing run` per environment, all at once, and wait for every one.

    Each process is reaped with ``os.wait4`` by its own thread, so that its finishing time and
    its own CPU are known even when the others are still running. Output goes to files, never
    pipes: a chatty run cannot block on a full pipe. Past ``timeout`` the runs are killed.
    """
    with tempfile.TemporaryDirectory(prefix="billing-run-") as tmp:
        procs: list[tuple[subprocess.Popen[bytes], Path, Path, float]] = []
        for i, env in enumerate(envs):
            out, err = Path(tmp) / f"{i}.out", Path(tmp) / f"{i}.err"
            with out.open("wb") as stdout, err.open("wb") as stderr:
                started = time.monotonic()
                proc = subprocess.Popen(
                    seats_command("billing", "run"),
                    env=dict(env),
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                )
            procs.append((proc, out, err, started))
        ended: dict[int, tuple[int, float, float]] = {}

        def reap(proc: subprocess.Popen[bytes]) -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            ended[proc.pid] = (
                proc.returncode,
                time.monotonic(),
                usage.ru_utime + usage.ru_stime,
            )

        threads = [threading.Thread(target=reap, args=(p,), daemon=True) for p, *_ in procs]
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0))
        if any(t.is_alive() for t in threads):
            for proc, *_ in procs:
                if proc.pid not in ended:
                    proc.kill()
            for t in threads:
                t.join(10)
            raise TimeoutError(f"a billing run did not finish within {timeout:.0f}s")
        results = []
        for proc, out, err, started in procs:
            code, finished, cpu = ended[proc.pid]
            results.append(
                RunResult(
                    returncode=code,
                    stdout=out.read_text(errors="replace"),
                    stderr=err.read_text(errors="replace"),
                    started=started,
                    finished=finished,
                    cpu_seconds=cpu,
                )
            )
        return results


def seats_verify(database_url: str) -> subprocess.CompletedProcess[str]:
    """Run `seats verify` on this database; exit 0 means every invariant holds."""
    env = billing_env(database_url, "http://127.0.0.1:9")  # no charge is made
    return subprocess.run(
        seats_command("verify"), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def report_count(report: Mapping[str, Any] | None, *names: str) -> int | None:
    """The first of ``names`` found in a run's report (nested sections joined with ``.``)."""
    if report is None:
        return None
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    walk("", report)
    for name in names:
        value = flat.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def renewals_collected(report: Mapping[str, Any] | None) -> int | None:
    """How many renewal charges a run's report says it collected."""
    return report_count(report, "renewals_paid", "renewals.paid", "collected.renewals")


def renewals_invoiced(report: Mapping[str, Any] | None) -> int | None:
    """How many renewal invoices a run's report says it made."""
    return report_count(report, "renewals_invoiced", "renewals.invoiced", "invoiced.renewals")
