"""The replica benchmark (``make bench-replica``): the agent check's cache misses read on the
primary against the same misses read on a streaming standby, in one run, with the primary's
CPU per check in each case.

One ``seats serve --workers 2`` instance per case on the seed of ``bench/harness.py``; every
check is a miss (``SEATS_ACCESS_CACHE_TTL_SECONDS`` of a microsecond: nothing stored is ever
served), so every one is a read. The "primary" instance reads PostgreSQL; the "standby" one has
``SEATS_DATABASE_READ_URL`` naming a standby of it (tests/standby.py, ``pg_basebackup -R``),
which it may read once it has replayed the position each account needs (the load writes
nothing, so after the start it always has). The cases take turns in the order primary,
standby, standby, primary (``BENCH_ROUNDS`` times).

CPU per check: user + system time of each cluster's postmaster and backends (its walsender
too, on the primary: the standby's stream is the primary's cost) during the load, over the
checks answered. Environment as bench/fleet.py: ``BENCH_DURATION`` (10), ``BENCH_ROUNDS`` (2),
``BENCH_CONNECTIONS`` (32), ``BENCH_ACCOUNTS`` (1,000), ``BENCH_SMOKE=1``. Exits 1 when any
request answered other than 2xx. See docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, seed  # noqa: E402
from bench.harness import BIN, SECRET, Server, children, cpu_seconds, log  # noqa: E402
from tests.standby import Standby  # noqa: E402

SMOKE = harness.SMOKE
DURATION = harness.DURATION
WARMUP = harness.WARMUP
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (1 if SMOKE else 2))
CONNS = max(2, int(os.environ.get("BENCH_CONNECTIONS") or 32))
CASES = ("primary", "standby")


def cluster_cpu(datadir: Path) -> float:
    """CPU seconds so far of the cluster in ``datadir``: its postmaster with the backends that
    exited, and the live ones."""
    postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
    live = sum(cpu_seconds(pid) for pid in children(postmaster))
    return cpu_seconds(postmaster, children=True) + live


def wrk_env() -> dict[str, str]:
    return {"BENCH_TOKENS": str(harness.TOKENS)}


@dataclass
class Load:
    case: str
    requests: int
    seconds: float
    p99_ms: float
    errors: int
    app_s: float
    primary_s: float
    standby_s: float


def load(case: str, server: Server, primary_dir: Path, standby_dir: Path) -> Load:
    app0 = sum(cpu_seconds(p) for p in server.workers())
    p0, s0 = cluster_cpu(primary_dir), cluster_cpu(standby_dir)
    res = harness.run_wrk("replica", case, "GET agents/{u}", server, "hot", CONNS, wrk_env())
    assert res is not None
    app1 = sum(cpu_seconds(p) for p in server.workers())
    p1, s1 = cluster_cpu(primary_dir), cluster_cpu(standby_dir)
    requests = round(res.rps * DURATION)
    return Load(case, requests, DURATION, res.p99, res.errors, app1 - app0, p1 - p0, s1 - s0)


async def main() -> int:
    db_url = os.environ["TEST_DATABASE_URL"]
    pg_url = db_url.replace("+asyncpg", "")
    primary_dir = Path(os.environ["TEST_PG_DATADIR"])
    work = Path(tempfile.mkdtemp(prefix="seats-bench-replica-"))
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
        "SEATS_DATABASE_POOL_SIZE": "10",
        # Every check a miss: an entry is older than this by the time it is asked for.
        "SEATS_ACCESS_CACHE_TTL_SECONDS": "0.000001",
    }
    argv = [str(BIN / "python"), "-m", "app.cli", "serve", "--no-migrate"]
    argv += ["--workers", "2", "--port", "{port}"]
    standby = Standby(db_url)
    servers: dict[str, Server] = {}
    loads: list[Load] = []
    try:
        standby.start()
        servers = {
            "primary": Server("primary", argv, served, "/readyz"),
            "standby": Server(
                "standby", argv, {**served, "SEATS_DATABASE_READ_URL": standby.url()}, "/readyz"
            ),
        }
        for server in servers.values():
            server.start(work)
        log(f"servers up (logs in {work}); standby on port {standby.port}")
        for _ in range(ROUNDS):
            for case in (*CASES, *reversed(CASES)):
                if WARMUP:
                    harness.run_wrk(
                        "replica", case, "", servers[case], "hot", CONNS, wrk_env(),
                        duration=WARMUP, record=False,
                    )  # fmt: skip
                loads.append(load(case, servers[case], primary_dir, standby.datadir))
    finally:
        for server in servers.values():
            server.stop()
        standby.stop()
        await conn.close()
    return print_report(loads, time.monotonic() - started)


def print_report(loads: list[Load], elapsed: float) -> int:
    print()
    print(
        f"Replica benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {'SMOKE ' if SMOKE else ''}"
        f"1 instance x 2 workers, {CONNS} connections, every agent check a cache miss, "
        f"{ROUNDS * 2} x {DURATION:.0f} s per case, {harness.ACCOUNTS} accounts; "
        f"{elapsed:.0f} s in all"
    )
    print(
        f"{'misses read on':16} {'checks/s':>9} {'p99 ms':>7} {'primary us/check':>17} "
        f"{'standby us/check':>17} {'app us/check':>13}"
    )
    for case in CASES:
        mine = [x for x in loads if x.case == case]
        n = sum(x.requests for x in mine) or 1
        rps = n / sum(x.seconds for x in mine)
        print(
            f"{case:16} {rps:9.0f} {max(x.p99_ms for x in mine):7.1f} "
            f"{sum(x.primary_s for x in mine) / n * 1e6:17.0f} "
            f"{sum(x.standby_s for x in mine) / n * 1e6:17.0f} "
            f"{sum(x.app_s for x in mine) / n * 1e6:13.0f}"
        )
    errors = sum(x.errors for x in loads)
    print(f"requests answered other than 2xx: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
