"""The benchmark: seed a throwaway PostgreSQL, serve it, load it with wrk, print one table.

Run through ``bench/run`` (``make bench``), which installs wrk if needed and starts the cluster
(``scripts/with-postgres``). Every figure of one table comes from the same run on the same
machine: the service, a raw asyncpg endpoint doing the same statements (``bench/raw_app.py``)
and pgbench running those statements (``bench/sql``), so that ratios stay meaningful on a
shared, noisy machine.

Environment: ``BENCH_DURATION`` seconds per measurement (10, after a 2 s warm-up);
``BENCH_SMOKE=1``: a tiny seed (40 accounts), 1 s per measurement and no warm-up, the same
code path otherwise (CI); ``BENCH_ACCOUNTS`` (1,000); ``BENCH_CONNECTIONS`` (32);
``BENCH_ONLY`` (comma-separated sections: hot, assign, quote, preview, purchase, scale);
``BENCH_PROFILE=dir`` (py-spy records each worker during each load, into dir);
``BENCH_CAPTURE_DIR=dir`` (the captured SQL, as files); ``BENCH_SERVICE_ROOT=dir`` (serve the
``app/`` of another checkout, for before/after figures). See docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.auth import mint_token  # noqa: E402
from app.config import Settings  # noqa: E402
from app.pagination import encode_cursor  # noqa: E402
from bench import capture, seed  # noqa: E402

SMOKE = os.environ.get("BENCH_SMOKE") == "1"
DURATION = float(os.environ.get("BENCH_DURATION") or (1 if SMOKE else 10))
WARMUP = 0.0 if SMOKE else min(2.0, DURATION / 2)  # seconds of load before each measurement
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS") or (40 if SMOKE else 1000))
CONNS = int(os.environ.get("BENCH_CONNECTIONS") or 32)
LOW_CONNS = 4
THREADS = 2
ONLY = {s for s in os.environ.get("BENCH_ONLY", "").split(",") if s}
PROFILE_DIR = os.environ.get("BENCH_PROFILE")
SECRET = "bench-secret-" + "k" * 40
BIN = Path(sys.executable).parent
SQL_DIR = ROOT / "bench" / "sql"
PAGE_LIMIT = 100
TOKENS = Path("tokens.lua")  # written by main()
SHAPE = seed.Shape(ACCOUNTS, 600 if SMOKE else seed.BIG_USERS, 400 if SMOKE else seed.BIG_AGENTS)
DEEP = min(9_000, SHAPE.big_agents - 2 * PAGE_LIMIT)  # agents before the deep page's cursor


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- processes


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready_path: str
    cwd: Path = ROOT
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, logdir: Path) -> None:
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        out = (logdir / f"{self.name}.log").open("wb")
        # Its own process group, so that stop() reaches the uvicorn workers too.
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited: see {logdir / (self.name + '.log')}\n"
                    + (logdir / f"{self.name}.log").read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready")

    def workers(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    section: str
    target: str  # service | raw | pgbench
    path: str
    conns: int
    rps: float
    p50: float  # ms
    p99: float  # ms
    errors: int
    note: str = ""
    app_cpu_us: float = math.nan  # CPU per request: the server's workers
    db_cpu_us: float = math.nan  # CPU per request: PostgreSQL


RESULTS: list[Result] = []
# (service | raw, request kind) -> statements the capture saw that request send
STATEMENT_COUNTS: dict[tuple[str, str], int] = {}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time of a process so far (and of its exited children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: exited backends
    return ticks / CLK_TCK


def postmaster_pid() -> int:
    pid_file = Path(os.environ["TEST_PG_DATADIR"]) / "postmaster.pid"
    return int(pid_file.read_text().split()[0])


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


class CpuMeter:
    """CPU used by the server's workers and by PostgreSQL (the bench cluster only: its
    postmaster, live backends, and backends that exited meanwhile) during one load."""

    def __init__(self, app_pids: list[int]) -> None:
        self.app_pids = app_pids
        self.app = self.db = 0.0

    def _db_now(self) -> dict[int, float]:
        postmaster = postmaster_pid()
        now = {pid: cpu_seconds(pid) for pid in children(postmaster)}
        now[postmaster] = cpu_seconds(postmaster, children=True)
        return now

    def __enter__(self) -> CpuMeter:
        self.app0 = sum(cpu_seconds(p) for p in self.app_pids)
        self.db0 = self._db_now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.app = sum(cpu_seconds(p) for p in self.app_pids) - self.app0
        db1 = self._db_now()
        self.db = sum(t - self.db0.get(pid, 0.0) for pid, t in db1.items())


def report(res: Result) -> Result:
    RESULTS.append(res)
    log(
        f"{res.target:8} {res.path:24} c{res.conns:<3} {res.rps:8.0f} req/s  p50 {res.p50:6.2f} "
        f"ms  p99 {res.p99:6.2f} ms  errors {res.errors}  cpu/req app {res.app_cpu_us:.0f} us "
        f"db {res.db_cpu_us:.0f} us"
    )
    return res


def run_wrk(
    section: str,
    target: str,
    path: str,
    server: Server,
    mode: str,
    conns: int,
    env: dict[str, str],
    *,
    duration: float = DURATION,
    record: bool = True,
    lag: int = 64,
) -> Result | None:
    """One wrk load of ``mode`` (bench/load.lua) on ``server``; None when not ``record``."""
    threads = min(THREADS, conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, math.ceil(duration))}s"]
    cmd += ["--timeout", "10s", "-s", str(ROOT / "bench" / "load.lua"), server.url]
    wenv = {
        **os.environ,
        **env,
        "BENCH_MODE": mode,
        "BENCH_THREADS": str(threads),
        "BENCH_LAG": str(lag),
        "BENCH_RUN": uuid.uuid4().hex[:12],
    }
    with CpuMeter(server.workers()) as cpu:
        out = subprocess.run(cmd, env=wenv, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result ({mode}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(line.removeprefix("BENCHJSON "))
    errors = r["non2xx"] + r["socket_errors"]
    if errors:
        log(f"{target} {path} c{conns}: {errors} errors {r['codes']} {r['sample']}")
    if not record:
        return None
    n = max(r["requests"], 1)
    return report(
        Result(
            section,
            target,
            path,
            conns,
            r["requests"] / (r["duration_us"] / 1e6),
            r["p50_us"] / 1000,
            r["p99_us"] / 1000,
            errors,
            r["codes"],
            cpu.app / n * 1e6,
            cpu.db / n * 1e6,
        )
    )


def run_pgbench(
    section: str,
    path: str,
    script: str,
    conns: int,
    pg: dict[str, str],
    variables: dict[str, str],
    workdir: Path,
) -> Result:
    """pgbench running ``bench/sql/script``, one script run per request; latencies from its
    per-transaction log (-l)."""
    logs = workdir / f"pgb-{script}-{conns}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    cmd = [pg["pgbench"], "-n", "-M", "prepared", "-h", "127.0.0.1", "-p", pg["port"]]
    cmd += ["-U", "postgres", "-c", str(conns), "-j", str(min(THREADS, conns))]
    cmd += ["-T", str(max(1, math.ceil(DURATION))), "-f", str(SQL_DIR / script)]
    cmd += ["-l", "--log-prefix", str(logs / "log")]
    for k, v in variables.items():
        cmd += ["-D", f"{k}={v}"]
    cmd.append(pg["db"])
    with CpuMeter([]) as cpu:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=DURATION + 60)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench {script} failed:\n{out.stdout}\n{out.stderr}")
    lat: list[int] = []
    first, last = math.inf, 0.0
    for f in logs.iterdir():
        for ln in f.read_text().splitlines():
            # client_id transaction_no time(us) script_no time_epoch time_us
            parts = ln.split()
            lat.append(int(parts[2]))
            end = int(parts[4]) + int(parts[5]) / 1e6
            first, last = min(first, end - int(parts[2]) / 1e6), max(last, end)
    failed = 0
    for ln in out.stdout.splitlines():
        if ln.startswith("number of failed transactions"):
            failed = int(ln.split(":")[1].split()[0])
    lat.sort()
    n = max(len(lat), 1)
    return report(
        Result(
            section,
            "pgbench",
            path,
            conns,
            len(lat) / max(last - first, 1e-6),
            pct(lat, 50) / 1000,
            pct(lat, 99) / 1000,
            failed,
            "",
            math.nan,
            cpu.db / n * 1e6,
        )
    )


def pct(values: list[int], p: float) -> float:
    if not values:
        return math.nan
    return float(values[min(len(values) - 1, int(len(values) * p / 100))])


# --------------------------------------------------------------------------- data


# The users of each account that requests are signed as (1 primary admin, 2 admin).
TOKEN_USERS = (1, 2, 7, 11, 12)


def write_tokens(path: Path, big_cursor: str) -> None:
    """The Lua table of ids and tokens that bench/load.lua reads (HS256, valid 1 day)."""
    settings = Settings(jwt_secret=SECRET)
    ttl = timedelta(days=1)

    def tok(account: str, user: int) -> str:
        return mint_token(settings, subject=str(user), account_id=account, ttl=ttl)

    def lua(account: str, users: int, first_free: int) -> str:
        tokens = ",".join(f'"{tok(account, u)}"' for u in TOKEN_USERS)
        return (
            f'{{id="{account}", users={users}, first_free={first_free}, '
            f'primary="{tok(account, 1)}", admin="{tok(account, 2)}", tokens={{{tokens}}}}}'
        )

    lines = [
        "return {",
        f"users={seed.USERS_PER_ACCOUNT}, first_free={seed.AGENTS_PER_ACCOUNT + 1}, "
        f"seats={seed.SEATS_PER_ACCOUNT}, page_limit={PAGE_LIMIT}, "
        f"token_users={{{','.join(map(str, TOKEN_USERS))}}}, "
        f'deep_cursor="{big_cursor}",',
        f"big={lua(seed.BIG, SHAPE.big_users, SHAPE.big_agents + 1)},",
        f"small={lua(seed.SMALL, seed.SMALL_USERS, seed.SMALL_AGENTS + 1)},",
        "acc={",
    ]
    lines += [
        lua(str(a), seed.USERS_PER_ACCOUNT, seed.AGENTS_PER_ACCOUNT + 1) + ","
        for a in range(1, SHAPE.accounts + 1)
    ]
    lines.append("}}")
    path.write_text("\n".join(lines))


async def deep_cursor(conn: asyncpg.Connection) -> str:
    """The cursor of GET /agents after DEEP agents of the big account, newest first."""
    row = await conn.fetchrow(
        "SELECT assigned_at, user_id FROM assignment WHERE account_id = $1 "
        "ORDER BY assigned_at DESC, user_id DESC OFFSET $2 LIMIT 1",
        seed.BIG,
        DEEP - 1,
    )
    return encode_cursor(row["assigned_at"], row["user_id"])


# --------------------------------------------------------------------------- main


@contextmanager
def profiling(server: Server, name: str) -> Iterator[None]:
    """py-spy on each worker while the block runs (BENCH_PROFILE only)."""
    if not PROFILE_DIR:
        yield
        return
    spies = [
        subprocess.Popen(
            [
                str(BIN / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                "200",
                "--nonblocking",
                "-o",
                f"{PROFILE_DIR}/{name}-{pid}.txt",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in server.workers()
    ]
    try:
        yield
    finally:
        for s in spies:
            s.send_signal(signal.SIGINT)
        for s in spies:
            s.wait(timeout=30)


def want(section: str) -> bool:
    return not ONLY or section in ONLY


async def main() -> int:
    db_url = os.environ["TEST_DATABASE_URL"]
    pg_url = db_url.replace("+asyncpg", "")
    bindir = os.environ["TEST_PG_BINDIR"]
    pgbench = shutil.which("pgbench", path=bindir) or shutil.which("pgbench")
    pg = {
        "pgbench": pgbench or "",
        "port": os.environ["TEST_PG_PORT"],
        "db": pg_url.rsplit("/", 1)[1],
    }
    pglog = Path(os.environ["TEST_PG_DATADIR"]).parent / "postgres.log"
    work = Path(tempfile.mkdtemp(prefix="seats-bench-"))
    if PROFILE_DIR:
        Path(PROFILE_DIR).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SEATS_")}
    env = {**base_env, "SEATS_DATABASE_URL": db_url, "SEATS_JWT_SECRET": SECRET}
    subprocess.run([str(BIN / "seats"), "migrate"], env=env, check=True, cwd=ROOT)
    conn = await asyncpg.connect(pg_url, server_settings={"application_name": "bench"})
    t0 = time.monotonic()
    counts = await seed.seed(conn, SHAPE)
    log(f"seeded {counts} in {time.monotonic() - t0:.1f} s")
    global TOKENS
    TOKENS = tokens = work / "tokens.lua"
    write_tokens(tokens, await deep_cursor(conn))

    # BENCH_SERVICE_ROOT: serve another checkout's app/ (e.g. `git archive HEAD` unpacked
    # somewhere) against the same seed, for before/after figures.
    service_root = Path(os.environ.get("BENCH_SERVICE_ROOT") or ROOT)
    if service_root != ROOT:
        env = {**env, "PYTHONPATH": str(service_root)}
    service = Server(
        "service",
        [str(BIN / "python"), "-m", "app.cli", "serve", "--workers", "2", "--port", "{port}"],
        {**env, "SEATS_LOG_LEVEL": "INFO", "SEATS_DATABASE_POOL_SIZE": "20"},
        "/readyz",
        cwd=service_root,
    )
    raw = Server(
        "raw",
        [
            str(BIN / "uvicorn"),
            "bench.raw_app:app",
            "--workers",
            "2",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--port",
            "{port}",
        ],
        {**env, "BENCH_PG_URL": pg_url, "BENCH_SECRET": SECRET, "PYTHONPATH": str(ROOT)},
        "/healthz",
    )
    # The scale section compares the database path of a 10-agent and a 10,000-agent account:
    # with the cache on it would compare hit rates (100 keys against 50,000; see "scale").
    uncached = Server(
        "service-uncached",
        service.argv,
        {**service.env, "SEATS_ACCESS_CACHE": "0"},
        "/readyz",
        cwd=service_root,
    )
    servers = [service, raw, *([uncached] if want("scale") else [])]
    try:
        for s in servers:
            s.start(work)
        log(f"service on {service.url}, raw endpoint on {raw.url}, logs in {work}")
        drift = await check_statements(conn, pglog, service, raw)
        await seed.reset(conn, SHAPE)
        await measure(conn, service, raw, pg, work, uncached)
    finally:
        for s in servers:
            s.stop()
        await conn.close()
    print_table(drift, time.monotonic() - started)
    failures = sum(r.errors for r in RESULTS)
    return 1 if failures else 0


PATHS = {
    "hot": "GET agents/{u}",
    "hot_warm": "GET agents/{me} 500 keys",
    "assign": "PUT+DELETE agents/{u}",
    "quote": "POST quotes",
    "preview": "GET quote-preview",
    "purchase": "POST purchases",
}


async def quiesce(conn: asyncpg.Connection) -> None:
    """Wait until no request of a finished load is still running (wrk stops mid-flight)."""
    quiet, deadline = 0, time.monotonic() + 30
    while quiet < 3 and time.monotonic() < deadline:
        busy = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle' AND pid <> "
            "pg_backend_pid() AND application_name IN ('seats', 'raw')"
        )
        quiet = quiet + 1 if busy == 0 else 0
        await asyncio.sleep(0.1)


async def reset(conn: asyncpg.Connection) -> None:
    await quiesce(conn)
    await seed.reset(conn, SHAPE)
    await conn.execute("VACUUM (ANALYZE) plan, assignment")


async def measure(
    conn: asyncpg.Connection,
    service: Server,
    raw: Server,
    pg: dict[str, str],
    work: Path,
    uncached: Server,
) -> None:
    now = datetime.now(UTC)
    start, end = seed.period(now.date())
    actor = "user:2"
    pgvars = {
        "naccounts": str(ACCOUNTS),
        "users": str(seed.USERS_PER_ACCOUNT),
        "first_free": str(seed.AGENTS_PER_ACCOUNT + 1),
        "phase": "0",
        "admin": "2",
        "primary": "1",
        "actor": actor,
        "primary_actor": "user:1",
        "now": now.isoformat(),
        "expires": (now + timedelta(minutes=15)).isoformat(),
        "assigned_type": "agent.assigned",
        "unassigned_type": "agent.unassigned",
        "assigned_data": json.dumps({"user_id": "11", "assigned_before": 10, "assigned_after": 11}),
        "unassigned_data": json.dumps(
            {"user_id": "11", "assigned_before": 11, "assigned_after": 10}
        ),
        "plan_seats": str(seed.SEATS_PER_ACCOUNT),
        "price": "1900",
        "currency": "USD",
        "cycle": "monthly",
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "due_now": "1900",
        "fingerprint": "f" * 64,
        "running": "running",
        "done": "done",
        "pending": "pending",
        "paid": "paid",
        "purchase_kind": "purchase",
        "zero": "0",
        "payment_method": "pm_card_visa",
        "created": "201",
        "purchased_type": "seats.purchased",
        "charge_op": "charge",
        "succeeded": "succeeded",
        "declined": "declined",
        "renewal_kind": "renewal",
        "line": "1 Conversations seat(s), monthly, prorated 3/30 days to " + end.isoformat(),
        "purchased_data": json.dumps({"seats_before": 20, "seats_after": 21, "amount": 190}),
        "response": json.dumps({"summary": {"status": "active", "seats": 21}, "invoice": {}}),
    }
    targets = [("service", service), ("raw", raw)]
    for key, mode, script in (
        ("hot", "hot", "hot_read.sql"),
        # The same read over a working set each worker's cache holds (app/entitlements.py):
        # against the raw endpoint only, whose SQL is the hot read's.
        ("hot_warm", "hot_warm", None),
        ("assign", "assign", "assign_cycle.sql"),
        ("quote", "quote", "quote.sql"),
        # What the Manage Seats slider asks on every move: reads only, nothing stored. The
        # service only: its SQL is the quote's reads, which the quote rows already compare.
        ("preview", "preview", "quote_preview.sql"),
        ("purchase", "purchase", "purchase.sql"),
    ):
        if not want(key):
            continue
        levels = [CONNS, LOW_CONNS] if key in ("hot", "assign") else [CONNS]
        if key == "purchase" and SMOKE:
            levels = [min(CONNS, ACCOUNTS // 4)]
        for conns in levels:
            for target, server in targets:
                if target == "raw" and key in ("purchase", "preview"):
                    continue  # not re-implemented raw: purchases against pgbench only
                await load(conn, key, target, PATHS[key], server, mode, conns, lag=2 * conns)
            if pg["pgbench"] and script and (SQL_DIR / script).exists():
                variables = {**pgvars, "nclients": str(conns)}
                run_pgbench(key, PATHS[key], script, conns, pg, variables, work)
                await reset(conn)
    if want("scale"):
        for mode, label in SCALE:
            await load(conn, "scale", "service", label, uncached, mode, LOW_CONNS, lag=8)
        # The same agent checks with the cache on, for the record: the 10-agent account's
        # 100 (caller, user) keys stay cached, the 10,000-agent account's 50,000 mostly not.
        for mode, label in SCALE[:2]:
            await load(conn, "scale", "cached", label, service, mode, LOW_CONNS, lag=8)


SCALE_HOT = ("hot_small", "hot_big")
SCALE = (
    ("hot_small", "GET agents/{u} 10-agent"),
    ("hot_big", "GET agents/{u} 10k-agent"),
    ("assign_small", "PUT+DELETE 10-agent"),
    ("assign_big", "PUT+DELETE 10k-agent"),
    ("pages_first", "GET agents first page"),
    ("pages_deep", f"GET agents {DEEP} deep"),
)


async def load(
    conn: asyncpg.Connection,
    section: str,
    target: str,
    path: str,
    server: Server,
    mode: str,
    conns: int,
    *,
    lag: int,
) -> None:
    """Warm up, then measure one load; the database is reset after any load that writes."""
    env = {"BENCH_TOKENS": str(TOKENS)}
    if WARMUP:
        run_wrk(
            section, target, path, server, mode, conns, env, duration=WARMUP, record=False, lag=lag
        )
        await reset(conn)
    with profiling(server, f"{target}-{mode}-c{conns}"):
        run_wrk(section, target, path, server, mode, conns, env, lag=lag)
    await reset(conn)


CAPTURED = {  # request kind -> (pgbench script, its branch)
    "hot": "hot_read.sql",
    "assign": "assign_cycle.sql",
    "unassign": "assign_cycle.sql",
    "quote": "quote.sql",
    "purchase": "purchase.sql",
}


def http(
    url: str, method: str, token: str, body: dict[str, object] | None = None, key: str | None = None
) -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


async def check_statements(
    conn: asyncpg.Connection, pglog: Path, service: Server, raw: Server
) -> list[str]:
    """Send one request of each kind with the statement log on; compare with bench/sql.

    Returns one line per (target, script): "ok" or where the statements differ.
    """
    settings = Settings(jwt_secret=SECRET)

    def tok(user: int) -> str:
        return mint_token(settings, subject=str(user), account_id="1")

    target_user = seed.AGENTS_PER_ACCOUNT + 1
    path = "/v1/accounts/1/conversations"
    requests = {
        "hot": ("GET", f"{path}/agents/3", tok(12), None, None),
        "assign": ("PUT", f"{path}/agents/{target_user}", tok(2), None, None),
        "unassign": ("DELETE", f"{path}/agents/{target_user}", tok(2), None, None),
        "quote": ("POST", f"{path}/quotes", tok(2), {"seats": 25}, None),
        "purchase": (
            "POST",
            f"{path}/purchases",
            tok(1),
            {"seats": 25},
            "capture-" + uuid.uuid4().hex,
        ),
    }
    await capture.enable(conn)
    try:
        for server, app_name in ((service, "seats"), (raw, "raw")):
            for kind, (method, url, token, body, key) in requests.items():
                if app_name == "raw" and kind == "purchase":
                    continue
                await capture.mark(conn, f"{app_name}-{kind}")
                status = http(server.url + url, method, token, body, key)
                await capture.mark(conn, f"{app_name}-{kind}")
                if status >= 300:
                    raise RuntimeError(f"{app_name} {kind} answered {status} during capture")
    finally:
        await capture.disable(conn)
    time.sleep(0.5)  # the server log is written asynchronously
    text = pglog.read_text(errors="replace")
    lines: list[str] = []
    out_dir = os.environ.get("BENCH_CAPTURE_DIR")
    for app_name in ("seats", "raw"):
        got: dict[str, list[str]] = {}
        for kind in requests:
            stmts = capture.parse(text, f"{app_name}-{kind}", app_name)
            if stmts:
                STATEMENT_COUNTS["service" if app_name == "seats" else "raw", kind] = len(stmts)
            got.setdefault(CAPTURED[kind], []).extend(capture.normalize(s) for s, _ in stmts)
            if out_dir and stmts:
                Path(out_dir).mkdir(parents=True, exist_ok=True)
                with (Path(out_dir) / f"{app_name}-{kind}.sql").open("w") as f:
                    f.writelines(f"{s};\n-- parameters: {p}\n" for s, p in stmts)
        for script, stmts in got.items():
            if not stmts:
                continue
            expected = capture.script_statements(SQL_DIR / script)
            who = "service" if app_name == "seats" else "raw"
            if stmts == expected:
                lines.append(f"{who:8} {script:18} same {len(stmts)} statements as captured")
            else:
                diff = next(
                    (i for i, (a, b) in enumerate(zip(stmts, expected, strict=False)) if a != b),
                    min(len(stmts), len(expected)),
                )
                lines.append(
                    f"{who:8} {script:18} DRIFT at statement {diff + 1}: captured "
                    f"{len(stmts)}, script {len(expected)}: "
                    f"{(stmts[diff : diff + 1] or ['(none)'])[0][:120]}"
                )
    return lines


def find(section: str, target: str, conns: int, path: str | None = None) -> Result | None:
    for r in RESULTS:
        if (r.section, r.target, r.conns) == (section, target, conns) and path in (None, r.path):
            return r
    return None


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def print_table(drift: list[str], elapsed: float) -> None:
    print()
    print(
        f"Seats benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  "
        f"{'SMOKE ' if SMOKE else ''}{ACCOUNTS} accounts x {seed.USERS_PER_ACCOUNT} users + "
        f"{SHAPE.big_agents}-agent and {seed.SMALL_AGENTS}-agent accounts, "
        f"{DURATION:g} s per measurement, nproc {os.cpu_count()}, took {elapsed:.0f} s"
    )
    print(
        'service: seats serve --workers 2 (pool 20/worker; the scale section\'s "service" '
        "rows with SEATS_ACCESS_CACHE=0); raw: bench/raw_app.py, uvicorn --workers 2; wrk -t2; "
        "pgbench -M prepared -j2"
    )
    print()
    print("SQL of bench/sql vs what the servers sent (PostgreSQL statement log):")
    for line in drift:
        print(f"  {line}")
    print()
    hdr = (
        f"{'section':8} {'target':8} {'path':26} {'conns':>5} {'req/s':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'app us':>7} {'db us':>6}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in RESULTS:
        print(
            f"{r.section:8} {r.target:8} {r.path:26} {r.conns:>5} {r.rps:>9.0f} "
            f"{r.p50:>8.2f} {r.p99:>8.2f} {r.errors:>6} {r.app_cpu_us:>7.0f} {r.db_cpu_us:>6.0f}  "
            f"{r.note}"
        )
    print("(app us, db us: CPU per request of the server's workers and of PostgreSQL)")
    print()
    print("Ratios (service / baseline)")
    print(
        f"{'path':26} {'conns':>5} {'req/s vs raw':>13} {'p99 vs raw':>11} "
        f"{'req/s vs pgbench':>17} {'p99 vs pgbench':>15}"
    )
    for key, path in PATHS.items():
        for conns in sorted({r.conns for r in RESULTS if r.section == key}, reverse=True):
            svc, raw, pgb = (find(key, t, conns) for t in ("service", "raw", "pgbench"))
            if svc is None:
                continue
            cells = []
            for base in (raw, pgb):
                if base is None:
                    cells += ["-", "-"]
                else:
                    cells += [
                        f"{ratio(svc.rps, base.rps):.2f}x",
                        f"{ratio(svc.p99, base.p99):.2f}x",
                    ]
            print(
                f"{path:26} {conns:>5} {cells[0]:>13} {cells[1]:>11} {cells[2]:>17} {cells[3]:>15}"
            )
    print()
    print("Scale (10,000-agent account / 10-agent account; deep page / first page), 4 conns")
    for what, b, sm in scale_pairs():
        print(f"  {what:18} p50 {ratio(b.p50, sm.p50):.2f}x  p99 {ratio(b.p99, sm.p99):.2f}x")
    print()
    print("Targets")
    for line in targets():
        print(f"  {line}")
    print()


def scale_pairs() -> list[tuple[str, Result, Result]]:
    """(what, large, small) of the scale section: big vs small account, deep vs first page."""
    out = []
    for big, small, what in (
        ("hot_big", "hot_small", "agent check"),
        ("assign_big", "assign_small", "assign/unassign"),
        ("pages_deep", "pages_first", "GET /agents page"),
    ):
        b, sm = (find("scale", "service", LOW_CONNS, dict(SCALE)[m]) for m in (big, small))
        if b and sm:
            out.append((what, b, sm))
    return out


def targets() -> list[str]:
    """PASS/MISS per target of the issue; a target whose figures are missing is skipped."""
    out = []

    def check(name: str, ok: bool, detail: str) -> None:
        out.append(f"{'PASS' if ok else 'MISS'}  {name}: {detail}")

    # Issue 13's targets.
    for key, label in (("hot", "hot read"), ("assign", "assign/unassign")):
        svc, raw = find(key, "service", CONNS), find(key, "raw", CONNS)
        if svc and raw:
            r = ratio(svc.rps, raw.rps)
            check(f"{label} req/s >= 0.5x raw at {CONNS} conns", r >= 0.5, f"{r:.2f}x")
            r = ratio(svc.p99, raw.p99)
            check(f"{label} p99 <= 2x raw at {CONNS} conns", r <= 2, f"{r:.2f}x")
    for key, label, limit in (("hot", "hot read", 5.0), ("assign", "assign/unassign", 10.0)):
        svc = find(key, "service", LOW_CONNS)
        if svc:
            check(
                f"{label} p99 < {limit:g} ms at {LOW_CONNS} conns",
                svc.p99 < limit,
                f"{svc.p99:.2f} ms",
            )
    # "app us" divides the workers' CPU by wrk's requests, and wrk counts the PUT and the
    # DELETE of a cycle as two: it is already the cost of one assign or one unassign.
    for key, label, limit in (("hot", "hot read", 500), ("assign", "assign or unassign", 1200)):
        svc = find(key, "service", CONNS)
        if svc:
            check(
                f"{label} worker CPU per request <= {limit:,} us at {CONNS} conns",
                svc.app_cpu_us <= limit,
                f"{svc.app_cpu_us:,.0f} us",
            )
    for what, b, sm in scale_pairs():
        r = ratio(b.p50, sm.p50)
        check(f"{what}: large / small within 1.2x (p50)", r <= 1.2, f"{r:.2f}x")
    small, big = (find("scale", "cached", LOW_CONNS, dict(SCALE)[m]) for m in SCALE_HOT)
    if small and big:
        out.append(
            f"info  agent check with the cache on: large / small {ratio(big.p50, small.p50):.2f}x "
            "(p50; the 10-agent account's keys stay cached, the 10,000-agent's mostly not)"
        )
    # Not one of the issue's targets: the hot read whose answers the workers' caches hold.
    svc, raw = find("hot_warm", "service", CONNS), find("hot_warm", "raw", CONNS)
    if svc and raw:
        out.append(
            f"info  hot read, warm cache, at {CONNS} conns: {ratio(svc.rps, raw.rps):.2f}x raw "
            f"req/s, p99 {ratio(svc.p99, raw.p99):.2f}x raw, {svc.app_cpu_us:,.0f} us CPU/request"
        )
    purchase = STATEMENT_COUNTS.get(("service", "purchase"))
    if purchase is not None:
        check("purchase in <= 24 statements", purchase <= 24, f"{purchase}")
    errors = sum(r.errors for r in RESULTS)
    check(
        "zero errors (non-2xx, socket errors, failed pgbench transactions)",
        errors == 0,
        f"{errors}",
    )
    return out


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
