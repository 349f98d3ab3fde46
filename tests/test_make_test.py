"""scripts/test-both, `make test`'s suite runner: both halves at once, each log whole, a
summary that names a failed half, and the exit status of the worse half.

A stand-in for ``make`` plays the two halves: each writes that it started, then waits for the
other's mark, so that halves run one after the other would time out instead of passing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAKE_MAKE = """\
import os, sys, time
from pathlib import Path

half = sys.argv[-1].removeprefix("test-")
marks = Path(os.environ["MARKS"])
(marks / half).touch()
other = "postgres" if half == "sqlite" else "sqlite"
deadline = time.monotonic() + 20
while not (marks / other).exists():
    if time.monotonic() > deadline:
        print(f"{half}: the {other} half never started alongside")
        sys.exit(3)
    time.sleep(0.05)
print(f"{half} line one [ 50%]")
print(f"{half} line two [100%]")
if half in os.environ.get("FAIL", "").split(","):
    print(f"FAILED tests/test_{half}.py::test_x")
    print("1 failed, 9 passed in 1.00s")
    sys.exit(1)
print("10 passed in 1.00s")
"""


def run_both(tmp_path: Path, fail: str = "") -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "fake-make"
    fake.write_text(f"#!{sys.executable}\n{FAKE_MAKE}")
    fake.chmod(0o755)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {
        **os.environ,
        "MAKE": str(fake),
        "MARKS": str(marks),
        "FAIL": fail,
        "SEATS_TEST_LOGS": str(tmp_path / "logs"),
    }
    return subprocess.run(
        [str(ROOT / "scripts" / "test-both")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_both_halves_run_at_once_and_each_log_is_printed_whole(tmp_path: Path) -> None:
    done = run_both(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for half in ("sqlite", "postgres"):
        log = (tmp_path / "logs" / f"{half}.log").read_text()
        assert log == f"{half} line one [ 50%]\n{half} line two [100%]\n10 passed in 1.00s\n"
        assert log in out  # whole, not interleaved with the other half's lines
        assert f"    test-{half:<9} passed   10 passed in 1.00s\n" in out
    assert "FAILED" not in out


def test_a_failed_half_fails_the_run_and_its_summary_says_so(tmp_path: Path) -> None:
    done = run_both(tmp_path, fail="postgres")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    summary = out[out.index("==> summary") :]
    assert "    test-sqlite    passed   10 passed in 1.00s\n" in summary
    failed = next(line for line in summary.splitlines() if line.startswith("    test-postgres"))
    assert "FAILED   1 failed, 9 passed in 1.00s" in failed
    assert str(tmp_path / "logs" / "postgres.log") in failed
    assert "FAILED tests/test_postgres.py::test_x" in out  # the failing half's log, printed
