"""The README's walkthrough, run as written against the real service: `seats serve` with the
test clock, as `SEATS_TEST_CLOCK=1 make run` starts it, and the lines of the README's block in
bash, in a folder laid out as a checkout (`var/dev-jwt-secret`, `.venv/bin/seats`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SECRET
from tests.live import LiveServer

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.server


def walkthrough() -> str:
    """The shell lines of the README's walkthrough, as a reader copies them."""
    section = (ROOT / "README.md").read_text().split("## Walkthrough with curl", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def answers(output: str) -> list[Any]:
    found = []
    for line in output.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl on PATH")
def test_the_readme_walkthrough_runs_as_written_to_past_due_and_back(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "dev-jwt-secret").write_text(SECRET + "\n")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    # Every answer must be a success: curl fails the script on any 4xx or 5xx.
    script = (
        "set -euo pipefail\n"
        'curl() { command curl --fail-with-body --show-error "$@"; echo; }\n' + walkthrough()
    )
    with LiveServer(database_url, workers=1) as server:
        own = {k: v for k, v in os.environ.items() if not k.startswith("SEATS_")}
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env={**own, "SEATS_PORT": str(server.port)},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr + server.stderr_text()[-3000:]
    plans = [a for a in answers(done.stdout) if isinstance(a, dict) and "outstanding_invoice" in a]
    assert [plan["status"] for plan in plans] == ["trialing", "past_due", "active"], done.stdout
    assert plans[1]["outstanding_invoice"]["failure_reason"] == "card_declined"
    assert plans[-1]["outstanding_invoice"] is None
