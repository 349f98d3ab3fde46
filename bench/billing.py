"""`make bench-billing`: how fast the billing run renews a day's accounts, alone and two at once.

Runs inside ``scripts/with-postgres`` (a throwaway cluster; ``TEST_DATABASE_URL`` points at it).
It migrates with ``seats migrate``, then, twice:

1. empties the database and seeds ``--accounts`` paid monthly accounts (1 to 10 seats each),
   all paid through 2026-12-01 (``bench/billing_fixture.py``: plain SQL, a second or two);
2. moves the test clock to 2026-12-01 12:00 UTC, past every renewal date;
3. runs `seats billing run` with the ``http`` gateway against a loopback payments server that
   answers each charge after ``--latency-ms``: once alone, then (after reseeding) two at once.

It prints renewals/s, the share of the work each run's report claims, gateway calls per
renewal, keys sent more than once, CPU per renewal (the run processes' own rusage, and the
PostgreSQL cluster's), and the targets of SPEC §7, PASS or MISS. It exits 1 only when a run
could not be measured (no report); a MISS is a result, not a failure. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.billing_fixture import (  # noqa: E402
    RENEWAL_RUN_AT,
    LoopbackPayments,
    RenewalStats,
    RunResult,
    billing_env,
    renewal_stats,
    renewals_collected,
    renewals_invoiced,
    reset_database,
    run_billing,
    seats_command,
    seed_due_accounts,
    set_test_clock,
)
from bench.harness import CpuMeter  # noqa: E402

TARGET_RATE = 100.0  # renewals/s of one run at 50 ms latency (SPEC §7, issue 10)


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Phase:
    """One measurement: some runs started at once on a fresh seed."""

    runs: list[RunResult]
    stats: RenewalStats
    calls: int
    keys_repeated: int
    keys_concurrent: int
    max_in_flight: int
    captured_equals_paid: bool
    db_cpu: float
    seed_seconds: float

    @property
    def elapsed(self) -> float:
        """From the first start to the last exit."""
        return max(r.finished for r in self.runs) - min(r.started for r in self.runs)

    @property
    def rate(self) -> float:
        """Accounts renewed (paid renewal in the database) per second of wall time."""
        return self.stats.paid / self.elapsed if self.elapsed else 0.0

    @property
    def app_cpu(self) -> float:
        return sum(r.cpu_seconds for r in self.runs)


async def measure(
    url: str, payments: LoopbackPayments, accounts: int, runs: int, extra_env: dict[str, str]
) -> Phase:
    """Reseed, then start ``runs`` billing runs at once and collect what they did."""
    await reset_database(url)
    payments.reset()
    t0 = time.monotonic()
    await seed_due_accounts(url, accounts)
    seed_seconds = time.monotonic() - t0
    await set_test_clock(url, RENEWAL_RUN_AT)
    log(f"seeded {accounts} due accounts in {seed_seconds:.1f}s; starting {runs} run(s)")
    env = billing_env(url, payments.url, **extra_env)
    with CpuMeter([]) as cpu:
        results = run_billing([env] * runs, timeout=3600)
    for i, r in enumerate(results, 1):
        log(f"run {i}: exit {r.returncode} in {r.elapsed:.1f}s, {r.cpu_seconds:.1f}s CPU")
        if r.report is None:
            log(f"run {i} printed no JSON report:\n{r.describe()}")
    stats = await renewal_stats(url)
    return Phase(
        runs=results,
        stats=stats,
        calls=payments.total_calls,
        keys_repeated=len(payments.keys_sent_more_than_once()),
        keys_concurrent=len(payments.keys_sent_concurrently()),
        max_in_flight=payments.max_in_flight,
        captured_equals_paid=stats.captured_equals_paid(payments),
        db_cpu=cpu.db,
        seed_seconds=seed_seconds,
    )


def per_renewal_ms(seconds: float, stats: RenewalStats) -> str:
    return f"{1000 * seconds / stats.paid:.1f} ms" if stats.paid else "n/a"


def report_counts(report: dict[str, Any] | None) -> str:
    """The report's non-zero counts, as ``name=n``, for the reader to see what else it did."""
    if report is None:
        return "(no report)"
    found: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, int) and not isinstance(value, bool) and value:
            found.append(f"{prefix}={value}")

    walk("", report)
    return " ".join(found)


def describe(name: str, phase: Phase) -> list[str]:
    s = phase.stats
    lines = [
        f"{name}",
        f"  wall time            {phase.elapsed:8.1f} s   (seeding, not counted:"
        f" {phase.seed_seconds:.1f} s)",
        f"  renewed              {s.paid:8d} of {s.due} due accounts"
        f" (invoiced {s.invoiced}, plans moved on {s.plans_renewed})",
        f"  renewals/s           {phase.rate:8.1f}",
        f"  gateway calls        {phase.calls:8d}   "
        f"({phase.calls / s.paid if s.paid else float('nan'):.2f} per renewal)",
        f"  keys sent > once     {phase.keys_repeated:8d}   "
        f"(while the same key was in flight: {phase.keys_concurrent})",
        f"  most charges in flight at once {phase.max_in_flight}",
        f"  periods invoiced twice {s.duplicated_periods}; "
        f"captured = paid: {'yes' if phase.captured_equals_paid else 'NO'}",
        f"  CPU per renewal      run processes {per_renewal_ms(phase.app_cpu, s)},"
        f" PostgreSQL {per_renewal_ms(phase.db_cpu, s)}",
    ]
    for i, r in enumerate(phase.runs, 1):
        paid, invoiced = renewals_collected(r.report), renewals_invoiced(r.report)
        errors = (r.report or {}).get("errors")
        n_errors = len(errors) if isinstance(errors, list | dict) else errors
        lines.append(
            f"  run {i}: exit {r.returncode}, {r.elapsed:.1f} s, CPU {r.cpu_seconds:.1f} s;"
            f" report: renewals invoiced {invoiced}, collected {paid}, errors {n_errors}"
        )
        counts = report_counts(r.report)
        if counts:
            lines.append(f"         report counts: {counts}")
    return lines


def targets(one: Phase, two: Phase, latency_ms: float) -> list[str]:
    out: list[str] = []

    def check(ok: bool, what: str) -> None:
        out.append(f"  {'PASS' if ok else 'MISS'}  {what}")

    check(
        one.rate >= TARGET_RATE,
        f"one run >= {TARGET_RATE:.0f} renewals/s at {latency_ms:g} ms: {one.rate:.1f}"
        + ("" if latency_ms == 50 else " (the target is stated at 50 ms)"),
    )
    check(
        one.stats.paid == one.stats.due,
        f"one run renews every due account: {one.stats.paid} of {one.stats.due}",
    )
    shares = [renewals_collected(r.report) for r in two.runs]
    renewed = two.stats.paid
    quarter = all(s is not None and renewed and s >= renewed / 4 for s in shares)
    claimed = sum(s or 0 for s in shares)
    check(
        quarter and claimed == renewed,
        f"two runs each do >= 1/4 of the work: {' + '.join(str(s) for s in shares)}"
        f" = {claimed} claimed for {renewed} renewed"
        + ("" if claimed == renewed else " (work done twice)" if claimed > renewed else ""),
    )
    check(
        two.elapsed <= one.elapsed and two.stats.paid >= one.stats.paid,
        f"two runs at once finish no slower than one: {two.elapsed:.1f} s vs {one.elapsed:.1f} s"
        f" ({two.stats.paid} vs {one.stats.paid} renewed)",
    )
    check(
        two.keys_repeated == 0 and one.keys_repeated == 0,
        f"no gateway key sent twice: {one.keys_repeated} (one run), {two.keys_repeated} (two)",
    )
    check(
        one.stats.duplicated_periods == two.stats.duplicated_periods == 0
        and one.captured_equals_paid
        and two.captured_equals_paid,
        "each period invoiced once and captured = paid, in both phases",
    )
    return out


async def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark of `seats billing run`.")
    parser.add_argument("--accounts", type=int, default=2000, help="due accounts (2000)")
    parser.add_argument(
        "--latency-ms", type=float, default=50.0, help="payments server latency per charge (50)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="SEATS_X=V",
        help="an extra setting for the billing runs, e.g. SEATS_BILLING_CONCURRENCY=32",
    )
    args = parser.parse_args()
    url = os.environ.get("TEST_DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        print("bench-billing needs PostgreSQL: run it in scripts/with-postgres", file=sys.stderr)
        return 2
    extra = dict(item.split("=", 1) for item in args.env)
    started = time.monotonic()
    # The machine may be shared: the load average says how much of it the figures had.
    load0 = "/".join(f"{x:.1f}" for x in os.getloadavg())
    subprocess.run(seats_command("migrate"), env=billing_env(url, "http://127.0.0.1:9"), check=True)
    with LoopbackPayments(latency=args.latency_ms / 1000) as payments:
        one = await measure(url, payments, args.accounts, 1, extra)
        two = await measure(url, payments, args.accounts, 2, extra)
    took = time.monotonic() - started
    header = (
        f"Billing-run benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {args.accounts} due"
        f" accounts, payments latency {args.latency_ms:g} ms, nproc {os.cpu_count()},"
        f" took {took:.0f} s"
    )
    settings = " ".join(f"{k}={v}" for k, v in sorted(extra.items())) or "defaults"
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        header,
        f"billing run settings: {settings}; load average at the start {load0}, at the end {load}",
        "",
    ]
    lines += [*describe("One run", one), "", *describe("Two runs at once", two), ""]
    lines += ["Targets", *targets(one, two, args.latency_ms)]
    print("\n".join(lines), flush=True)
    if any(r.report is None for r in one.runs + two.runs):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
