"""`make bench` end to end on a tiny seed (BENCH_SMOKE=1): it starts, loads, and reports.

Never a timed assertion: figures from a few seconds on a shared CI machine mean nothing. What
must hold is that the harness still runs against the current service (seed, servers, wrk and
pgbench scripts, statement capture) and prints every row, with no request answered in error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pg_server_bindir() -> Path | None:
    """Where initdb, pg_ctl, postgres and pgbench are: PATH, then /usr/lib/postgresql/*/bin."""
    candidates = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        initdb = directory / "initdb"
        if initdb.exists():
            real = initdb.resolve().parent
            if all((real / tool).exists() for tool in ("pg_ctl", "postgres", "pgbench")):
                return real
    return None


pytestmark = [
    pytest.mark.server,
    # Once per `make test`: in its PostgreSQL run (the bench starts its own cluster).
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="runs in the PostgreSQL run only"
    ),
    pytest.mark.skipif(
        shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
    ),
    pytest.mark.skipif(
        _pg_server_bindir() is None, reason="no PostgreSQL server binaries with pgbench"
    ),
]

ROWS = [
    (section, target, path, conns)
    for section, path in (("hot", "GET agents/{u}"), ("assign", "PUT+DELETE agents/{u}"))
    for conns in (32, 4)
    for target in ("service", "raw", "pgbench")
] + [
    ("hot_warm", "service", "GET agents/{me} 500 keys", 32),
    ("hot_warm", "raw", "GET agents/{me} 500 keys", 32),
    ("quote", "service", "POST quotes", 32),
    ("quote", "raw", "POST quotes", 32),
    ("quote", "pgbench", "POST quotes", 32),
    ("preview", "service", "GET quote-preview", 32),
    ("purchase", "service", "POST purchases", 10),
    ("purchase", "pgbench", "POST purchases", 10),
    ("scale", "service", "GET agents/{u} 10-agent", 4),
    ("scale", "service", "GET agents/{u} 10k-agent", 4),
    ("scale", "service", "PUT+DELETE 10-agent", 4),
    ("scale", "service", "PUT+DELETE 10k-agent", 4),
    ("scale", "service", "GET agents first page", 4),
    ("scale", "service", "GET agents 200 deep", 4),
    ("scale", "cached", "GET agents/{u} 10-agent", 4),
    ("scale", "cached", "GET agents/{u} 10k-agent", 4),
]


def test_bench_smoke_starts_loads_and_prints_every_row() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env["BENCH_SMOKE"] = "1"
    proc = subprocess.run(
        [str(ROOT / "bench" / "run")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report  # 1 when any request answered an error
    out = proc.stdout
    assert "SQL of bench/sql vs what the servers sent" in out, report
    for section, target, path, conns in ROWS:
        # section target path conns req/s p50 p99 errors: requests were made, none failed.
        row = re.compile(
            rf"^{section}\s+{target}\s+{re.escape(path)}\s+{conns}\s+(\d+)\s+[\d.]+\s+[\d.]+\s+0\b",
            re.M,
        )
        match = row.search(out)
        assert match, f"no row for {section} {target} {path} c{conns}\n{report}"
        assert int(match[1]) > 0, f"no load for {section} {target} {path}\n{report}"
    for heading in ("Ratios (service / baseline)", "Scale (", "Targets"):
        assert heading in out, report
    assert "PASS  zero errors" in out, report
