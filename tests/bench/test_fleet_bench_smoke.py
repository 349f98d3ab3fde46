"""`make bench-fleet` end to end on a tiny seed (BENCH_SMOKE=1): both fleets start, load, and
report their ratios, with no request answered in error.

Never a timed assertion: a ratio from 1 s loads on a shared CI machine means nothing. What must
hold is that the benchmark still runs against the current service: the pooled fleet behind
PgBouncer serves every request of both loads, as the direct one does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pgbouncer import pgbouncer_version

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.server,
    # Once per `make test`: in its PostgreSQL run (the bench starts its own cluster).
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="runs in the PostgreSQL run only"
    ),
    pytest.mark.skipif(
        shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
    ),
]


def test_fleet_bench_smoke_loads_both_fleets_and_prints_the_ratios() -> None:
    if pgbouncer_version() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the fleet benchmark's smoke test, and pgbouncer is missing")
        pytest.skip("pgbouncer is not installed (Debian package `pgbouncer`)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "TEST_", "SEATS_"))}
    env["BENCH_SMOKE"] = "1"
    proc = subprocess.run(
        [str(ROOT / "scripts" / "with-postgres"), sys.executable, "bench/fleet.py"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report  # 1 when any request answered other than 2xx
    for label in ("GET agents/{me} (cached)", "GET agents/{u} (misses)", "PUT+DELETE agents/{u}"):
        # load, direct req/s, pooled req/s, pooled/direct (its median over the rounds, and
        # their spread): both fleets served the load.
        row = re.search(
            rf"^{re.escape(label)}\s+(\d+)\s+(\d+)\s+[\d.]+x \([\d.]+-[\d.]+\)$", proc.stdout, re.M
        )
        assert row, f"no row for {label}\n{report}"
        assert int(row[1]) > 0 and int(row[2]) > 0, report
    assert "requests answered other than 2xx: 0" in proc.stdout, report
