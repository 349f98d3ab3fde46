"""`make bench-billing` end to end on a tiny seed: it seeds, runs, measures and prints.

Never a timed assertion (figures from a shared CI machine mean nothing): what must hold is that
the bench still drives the current service (the seed fits the schema, the runs print a JSON
report) and prints every figure and target line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import postgres_only

ROOT = Path(__file__).resolve().parents[2]

pytestmark = postgres_only


def test_billing_bench_smoke_prints_every_figure() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "billing.py"),
            "--accounts",
            "30",
            "--latency-ms",
            "0",
        ],
        env=dict(os.environ),  # TEST_DATABASE_URL: this run's database, emptied by the bench
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report  # 1 when a run printed no report
    out = proc.stdout
    for heading in ("One run", "Two runs at once", "Targets"):
        assert re.search(rf"^{heading}$", out, re.M), report
    for figure in ("renewals/s", "gateway calls", "keys sent > once", "CPU per renewal"):
        assert len(re.findall(rf"^  {re.escape(figure)}", out, re.M)) == 2, report
    assert re.search(r"^  renewed\s+\d+ of 30 due accounts", out, re.M), report
    assert len(re.findall(r"^  (PASS|MISS)  ", out, re.M)) == 6, report
