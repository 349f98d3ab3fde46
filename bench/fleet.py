"""The fleet benchmark (``make bench-fleet``): one fleet through PgBouncer against the same fleet
straight to PostgreSQL, in one run, as ratios.

Each fleet is two ``seats serve --workers 2`` instances on the seed of ``bench/harness.py``;
the pooled one connects through Debian's PgBouncer in ``pool_mode = transaction``
(``SEATS_DATABASE_POOLER=transaction``) with each worker's listener straight to PostgreSQL
(``SEATS_DATABASE_LISTEN_URL``), the direct one straight to PostgreSQL. Each load is two wrk
processes at once, one per instance, on disjoint accounts and users (bench/load.lua's
``BENCH_TID_OFFSET``), their requests per second added up. The fleets take turns in the order
direct, pooled, pooled, direct (``BENCH_ROUNDS`` times), so that a machine getting busier or
quieter during the run weighs on both alike.

``BENCH_FLEET_SPLIT=1`` adds a third fleet, straight to PostgreSQL but with
``SEATS_DATABASE_POOLER=transaction`` (unnamed statements): it splits the pooled fleet's cost
into what the statements cost and what the pooler's hop costs.

Run through ``scripts/with-postgres`` (the Makefile does). Environment: ``BENCH_DURATION``
seconds per load (10), ``BENCH_ROUNDS`` (2), ``BENCH_CONNECTIONS`` (32, split between the two
instances), ``BENCH_ACCOUNTS`` (1,000), ``BENCH_SMOKE=1`` (a tiny seed, 1 s loads, one round:
the smoke test). Exits 1 when any request answered other than 2xx. See BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, seed  # noqa: E402
from bench.harness import BIN, SECRET, Server, log  # noqa: E402
from tests.pgbouncer import PgBouncer  # noqa: E402

SMOKE = harness.SMOKE
DURATION = harness.DURATION
WARMUP = harness.WARMUP
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (1 if SMOKE else 2))
CONNS = max(2, int(os.environ.get("BENCH_CONNECTIONS") or 32))
INSTANCES = 2
WORKERS = 2
POOL_SIZE = 10
SPLIT = os.environ.get("BENCH_FLEET_SPLIT") == "1"
# The agent check twice: as the inbox asks it (its signed-in users asking of themselves, a
# working set each worker's cache holds) and as cache misses (any user of 1,000 accounts).
LOADS = (
    ("hot_warm", "GET agents/{me} (cached)"),
    ("hot", "GET agents/{u} (misses)"),
    ("assign", "PUT+DELETE agents/{u}"),
)
FLEETS = ("direct", "unnamed", "pooled") if SPLIT else ("direct", "pooled")


@dataclass
class Load:
    """One load of one fleet: both instances' wrk added up."""

    fleet: str
    mode: str
    requests: int = 0
    seconds: float = 0.0
    p99_ms: list[float] = field(default_factory=list)
    errors: int = 0
    codes: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else math.nan


def wrk(
    server: Server, mode: str, conns: int, offset: int, seconds: float
) -> subprocess.Popen[str]:
    """wrk with one thread on ``server``: the accounts and users of thread ``offset + 1`` of
    ``INSTANCES`` (bench/load.lua), so that two instances' loads never write the same rows."""
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, math.ceil(seconds))}s", "--timeout", "10s"]
    cmd += ["-s", str(ROOT / "bench" / "load.lua"), server.url]
    env = {
        **os.environ,
        "BENCH_TOKENS": str(harness.TOKENS),
        "BENCH_MODE": mode,
        "BENCH_THREADS": str(INSTANCES),
        "BENCH_TID_OFFSET": str(offset),
        "BENCH_LAG": str(2 * conns),
        "BENCH_RUN": uuid.uuid4().hex[:12],
    }
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load_fleet(fleet: str, servers: list[Server], mode: str, seconds: float) -> Load:
    per_instance = max(1, CONNS // len(servers))
    procs = [wrk(s, mode, per_instance, i, seconds) for i, s in enumerate(servers)]
    result = Load(fleet, mode)
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 60)
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no result ({fleet} {mode}):\n{out}\n{err}")
        r = json.loads(line.removeprefix("BENCHJSON "))
        result.requests += r["requests"]
        # The loads run side by side: the fleet's rate is the sum of the instances' rates.
        result.seconds = max(result.seconds, r["duration_us"] / 1e6)
        result.p99_ms.append(r["p99_us"] / 1000)
        errors = r["non2xx"] + r["socket_errors"]
        result.errors += errors
        if errors:
            result.codes.append(f"{r['codes']} {r['sample'][:200]}")
    return result


async def main() -> int:
    db_url = os.environ["TEST_DATABASE_URL"]
    pg_url = db_url.replace("+asyncpg", "")
    work = Path(tempfile.mkdtemp(prefix="seats-bench-fleet-"))
    started = time.monotonic()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SEATS_")}
    env = {**base_env, "SEATS_DATABASE_URL": db_url, "SEATS_JWT_SECRET": SECRET}
    subprocess.run([str(BIN / "seats"), "migrate"], env=env, check=True, cwd=ROOT)
    conn = await asyncpg.connect(pg_url, server_settings={"application_name": "bench"})
    counts = await seed.seed(conn, harness.SHAPE)
    log(f"seeded {counts}")
    harness.TOKENS = work / "tokens.lua"
    harness.write_tokens(harness.TOKENS, await harness.deep_cursor(conn))

    served = {
        **env,
        "SEATS_LOG_LEVEL": "WARNING",
        "SEATS_DATABASE_POOL_SIZE": str(POOL_SIZE),
        "SEATS_DATABASE_LISTEN_URL": db_url,
    }
    argv = [str(BIN / "python"), "-m", "app.cli", "serve", "--no-migrate"]
    argv += ["--workers", str(WORKERS), "--port", "{port}"]
    # Enough server connections for every worker's pool: the pooler is not the bottleneck.
    bouncer = PgBouncer(
        db_url, default_pool_size=INSTANCES * WORKERS * POOL_SIZE, max_client_conn=400
    )
    fleets: dict[str, list[Server]] = {}
    try:
        bouncer.start()
        pooled_env = {
            **served,
            "SEATS_DATABASE_URL": bouncer.url,
            "SEATS_DATABASE_POOLER": "transaction",
        }
        fleets = {
            "direct": [Server(f"direct-{i}", argv, served, "/readyz") for i in range(INSTANCES)],
            "unnamed": [
                Server(
                    f"unnamed-{i}",
                    argv,
                    {**served, "SEATS_DATABASE_POOLER": "transaction"},
                    "/readyz",
                )
                for i in range(INSTANCES if SPLIT else 0)
            ],
            "pooled": [
                Server(f"pooled-{i}", argv, pooled_env, "/readyz") for i in range(INSTANCES)
            ],
        }
        for servers in fleets.values():
            for server in servers:
                server.start(work)
        log(f"fleets up (logs in {work}); PgBouncer {bouncer.version} on {bouncer.url}")
        loads = await measure(conn, fleets)
    finally:
        for servers in fleets.values():
            for server in servers:
                server.stop()
        bouncer.stop()
        await conn.close()
    return print_report(loads, time.monotonic() - started)


async def measure(conn: asyncpg.Connection, fleets: dict[str, list[Server]]) -> list[Load]:
    loads = []
    for mode, _ in LOADS:
        for _ in range(ROUNDS):
            for fleet in (*FLEETS, *reversed(FLEETS)):
                if WARMUP:
                    load_fleet(fleet, fleets[fleet], mode, WARMUP)
                    await harness.reset(conn)
                done = load_fleet(fleet, fleets[fleet], mode, DURATION)
                log(
                    f"{fleet:6} {mode:6} {done.rps:8.0f} req/s  p99 "
                    f"{max(done.p99_ms):6.1f} ms  errors {done.errors} {' '.join(done.codes)}"
                )
                loads.append(done)
                await harness.reset(conn)
    return loads


def print_report(loads: list[Load], elapsed: float) -> int:
    def rate(fleet: str, mode: str) -> float:
        mine = [x for x in loads if (x.fleet, x.mode) == (fleet, mode)]
        return sum(x.requests for x in mine) / sum(x.seconds for x in mine)

    print()
    print(
        f"Fleet benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {'SMOKE ' if SMOKE else ''}"
        f"{INSTANCES} instances x {WORKERS} workers, pool {POOL_SIZE}, {CONNS} connections, "
        f"{len(loads) // (len(FLEETS) * len(LOADS))} x {DURATION:.0f} s per fleet and load, "
        f"{harness.ACCOUNTS} accounts; {elapsed:.0f} s in all"
    )
    print(f"{'load':24} {'direct req/s':>13} {'pooled req/s':>13} {'pooled/direct':>14}")
    for mode, label in LOADS:
        direct, pooled = rate("direct", mode), rate("pooled", mode)
        print(f"{label:24} {direct:13.0f} {pooled:13.0f} {pooled / direct:13.2f}x")
    if SPLIT:
        print("split: direct with SEATS_DATABASE_POOLER=transaction (unnamed statements)")
        print(f"{'load':24} {'unnamed req/s':>13} {'unnamed/direct':>14} {'pooled/unnamed':>14}")
        for mode, label in LOADS:
            direct, unnamed = rate("direct", mode), rate("unnamed", mode)
            pooled = rate("pooled", mode)
            print(f"{label:24} {unnamed:13.0f} {unnamed / direct:13.2f}x {pooled / unnamed:13.2f}x")
    errors = sum(x.errors for x in loads)
    print(f"requests answered other than 2xx: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
