"""The README's table of error codes is the error hierarchy's, and cannot drift from it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from app.errors import error_classes

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "error_codes.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("error_codes", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_up_to_date() -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_table_lists_every_code_once_with_its_status() -> None:
    table = load_script().render()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    listed = [row.split("|")[2].strip().strip("`") for row in rows if "`code`" not in row]
    codes = [cls.code for cls in error_classes()]
    assert sorted(listed) == sorted(codes)
    assert len(set(listed)) == len(listed)
    for cls in error_classes():
        assert f"| {cls.status} | `{cls.code}` |" in table


def test_a_stale_table_is_detected() -> None:
    script = load_script()
    readme = (ROOT / "README.md").read_text()
    stale = readme.replace("| `seats_assigned` |", "| `seats_taken` |")
    assert stale != readme
    assert script.updated(stale) == readme
