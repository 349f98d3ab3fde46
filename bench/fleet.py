"""The fleet benchmark (``make bench-fleet``): one fleet through PgBouncer against the same fleet
straight to PostgreSQL, in one run, as ratios.

Each fleet is two ``seats serve --workers 2`` instances on the seed of ``bench/harness.py``;
the pooled one connects through Debian's PgBouncer in ``pool_mode = transaction``
(``SEATS_DATABASE_POOLER=transaction``) with each worker's listener straight to PostgreSQL
(``SEATS_DATABASE_LISTEN_URL``), the direct one straight to PostgreSQL. Each load is two wrk
processes at once, one per instance, on disjoint accounts and users (bench/load.lua's
``BENCH_TID_OFFSET``), their requests per second added up.

The machine is shared and noisy, so the ratios come from interleaved rounds: each round runs
every load once per fleet in the order direct, pooled, pooled, direct (a machine getting busier
or quieter during a round weighs on both alike), and gives one ratio per load (the pooled
fleet's rate over the direct one's, in that round); the rounds run one after another, all
loads in each. The report gives each load's median ratio over the rounds and its spread (the
lowest and highest round), so that a reader can tell a difference from the noise.

With a PgBouncer that maps prepared statements (1.21+; ``PGBOUNCER`` names the binary, Debian's
1.18 otherwise), it runs with ``max_prepared_statements`` and one more fleet goes through it:
``named``, with ``SEATS_DATABASE_POOLER=none`` (asyncpg's named statements, each planned once
per server connection), against the pooled fleet's unnamed ones.

``BENCH_FLEET_SPLIT=1`` adds another fleet, straight to PostgreSQL but with
``SEATS_DATABASE_POOLER=transaction`` (unnamed statements): it splits the pooled fleet's cost
into what the statements cost and what the pooler's hop costs.

Run through ``scripts/with-postgres`` (the Makefile does). Environment: ``BENCH_DURATION``
seconds per load (10), ``BENCH_ROUNDS`` (3), ``BENCH_CONNECTIONS`` (32, split between the two
instances), ``BENCH_ACCOUNTS`` (1,000), ``BENCH_SMOKE=1`` (a tiny seed, 1 s loads, one round:
the smoke test). Exits 1 when any request answered other than 2xx. See docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
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
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (1 if SMOKE else 3))
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
# PgBouncer's own cache of prepared statements per server connection, when it has one.
MAX_PREPARED_STATEMENTS = 200


@dataclass
class Load:
    """One load of one fleet: both instances' wrk added up."""

    fleet: str
    mode: str
    round: int = 0
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


def load_fleet(
    fleet: str, servers: list[Server], mode: str, seconds: float, round: int = 0
) -> Load:
    per_instance = max(1, CONNS // len(servers))
    procs = [wrk(s, mode, per_instance, i, seconds) for i, s in enumerate(servers)]
    result = Load(fleet, mode, round)
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
        db_url,
        default_pool_size=INSTANCES * WORKERS * POOL_SIZE,
        max_client_conn=400,
        max_prepared_statements=MAX_PREPARED_STATEMENTS,
    )
    order = (*FLEETS, "named") if bouncer.supports_prepared_statements else FLEETS
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
            "named": [
                Server(
                    f"named-{i}", argv, {**pooled_env, "SEATS_DATABASE_POOLER": "none"}, "/readyz"
                )
                for i in range(INSTANCES if "named" in order else 0)
            ],
        }
        for servers in fleets.values():
            for server in servers:
                server.start(work)
        log(f"fleets up (logs in {work}); PgBouncer {bouncer.version} on {bouncer.url}")
        loads = await measure(conn, fleets, order)
    finally:
        for servers in fleets.values():
            for server in servers:
                server.stop()
        bouncer.stop()
        await conn.close()
    return print_report(loads, time.monotonic() - started, bouncer.version)


async def measure(
    conn: asyncpg.Connection, fleets: dict[str, list[Server]], order: tuple[str, ...]
) -> list[Load]:
    loads = []
    for round in range(ROUNDS):
        for mode, _ in LOADS:
            for fleet in (*order, *reversed(order)):
                if WARMUP:
                    load_fleet(fleet, fleets[fleet], mode, WARMUP)
                    await harness.reset(conn)
                done = load_fleet(fleet, fleets[fleet], mode, DURATION, round)
                log(
                    f"round {round + 1} {fleet:7} {mode:8} {done.rps:8.0f} req/s  p99 "
                    f"{max(done.p99_ms):6.1f} ms  errors {done.errors} {' '.join(done.codes)}"
                )
                loads.append(done)
                await harness.reset(conn)
    return loads


def rate(loads: list[Load], fleet: str, mode: str, round: int | None = None) -> float:
    """The fleet's requests per second under the load: of one round, or of all of them."""
    mine = [
        x
        for x in loads
        if (x.fleet, x.mode) == (fleet, mode) and (round is None or x.round == round)
    ]
    return sum(x.requests for x in mine) / sum(x.seconds for x in mine)


def ratios(loads: list[Load], fleet: str, base: str, mode: str) -> list[float]:
    """``fleet`` over ``base`` under the load, one ratio per round (each from the loads of
    that round only, which ran interleaved)."""
    return [
        rate(loads, fleet, mode, r) / rate(loads, base, mode, r)
        for r in sorted({x.round for x in loads})
    ]


def summary(values: list[float]) -> str:
    """The median of the rounds' ratios and their spread: ``0.93x (0.90-0.97)``."""
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def print_report(loads: list[Load], elapsed: float, version: tuple[int, int] | None) -> int:
    rounds = len({x.round for x in loads})
    print()
    print(
        f"Fleet benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {'SMOKE ' if SMOKE else ''}"
        f"{INSTANCES} instances x {WORKERS} workers, pool {POOL_SIZE}, {CONNS} connections, "
        f"{rounds} interleaved rounds x {DURATION:.0f} s per fleet and load (twice per round), "
        f"{harness.ACCOUNTS} accounts; {elapsed:.0f} s in all; "
        f"PgBouncer {'.'.join(map(str, version or ()))}"
    )
    print("pooled/direct: the median of the rounds' ratios, and (lowest-highest) round")
    print(f"{'load':24} {'direct req/s':>13} {'pooled req/s':>13} {'pooled/direct':>14}")
    for mode, label in LOADS:
        direct, pooled = rate(loads, "direct", mode), rate(loads, "pooled", mode)
        spread = summary(ratios(loads, "pooled", "direct", mode))
        print(f"{label:24} {direct:13.0f} {pooled:13.0f} {spread:>26}")
    if SPLIT:
        print("split: direct with SEATS_DATABASE_POOLER=transaction (unnamed statements)")
        print(f"{'load':24} {'unnamed req/s':>13} {'unnamed/direct':>26} {'pooled/unnamed':>26}")
        for mode, label in LOADS:
            unnamed = rate(loads, "unnamed", mode)
            by_statements = summary(ratios(loads, "unnamed", "direct", mode))
            by_hop = summary(ratios(loads, "pooled", "unnamed", mode))
            print(f"{label:24} {unnamed:13.0f} {by_statements:>26} {by_hop:>26}")
    if any(x.fleet == "named" for x in loads):
        print(
            "named: through PgBouncer with max_prepared_statements = "
            f"{MAX_PREPARED_STATEMENTS}, SEATS_DATABASE_POOLER=none (named statements)"
        )
        print(f"{'load':24} {'named req/s':>13} {'named/direct':>26} {'named/pooled':>26}")
        for mode, label in LOADS:
            named = rate(loads, "named", mode)
            against_direct = summary(ratios(loads, "named", "direct", mode))
            against_pooled = summary(ratios(loads, "named", "pooled", mode))
            print(f"{label:24} {named:13.0f} {against_direct:>26} {against_pooled:>26}")
    errors = sum(x.errors for x in loads)
    print(f"requests answered other than 2xx: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
