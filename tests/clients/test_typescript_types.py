"""TypeScript types generated with openapi-typescript compile a front end's usage strictly.

The two npm packages (versions pinned in tests/clients/ts/package.json) are installed in a
temporary folder; the types are generated from the running server's document; usage.ts must
pass ``tsc --strict`` and each of its marked mistakes (a misspelled error code, a null key,
...) must fail to compile: the document types what a front end relies on.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.clients.conftest import tool_or_skip

pytestmark = pytest.mark.server

TS = Path(__file__).parent / "ts"
MISTAKE = re.compile(r"^// @mistake ([a-z-]+): (.+)$", re.M)


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


# Installed once per checkout and package.json (both halves of `make test` use the same): a
# second `npm install` of the same pinned versions cost several seconds and tested nothing new.
TOOLS_CACHE = TS.parents[2] / "var" / "npm-tools"


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """openapi-typescript and typescript, installed from the npm registry (see TOOLS_CACHE)."""
    npm = tool_or_skip("npm")
    tool_or_skip("node")
    manifest = (TS / "package.json").read_bytes()
    folder = TOOLS_CACHE / hashlib.sha256(manifest).hexdigest()[:16]
    bin_dir = folder / "node_modules" / ".bin"
    if not folder.is_dir():
        staging = tmp_path_factory.mktemp("npm-tools")
        (staging / "package.json").write_bytes(manifest)
        done = run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], staging)
        assert done.returncode == 0, done.stdout + done.stderr
        TOOLS_CACHE.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: a half-copied folder would pass the check above next time.
        ready = Path(tempfile.mkdtemp(dir=TOOLS_CACHE))
        shutil.copytree(staging, ready, symlinks=True, dirs_exist_ok=True)
        with contextlib.suppress(OSError):  # another run got there first: use its folder
            ready.rename(folder)
        shutil.rmtree(ready, ignore_errors=True)
    for tool in ("openapi-typescript", "tsc"):
        assert (bin_dir / tool).exists(), f"{tool} missing from {bin_dir}"
    return bin_dir


TSC_OPTIONS = ["--strict", "--noEmit", "--target", "ES2022", "--module", "ES2022"]
TSC_OPTIONS += ["--moduleResolution", "bundler"]


def test_generated_types_compile_usage_and_refuse_mistakes(
    document: bytes, tools: Path, tmp_path: Path
) -> None:
    (tmp_path / "openapi.json").write_bytes(document)
    generated = run(
        [str(tools / "openapi-typescript"), "openapi.json", "-o", "seats.d.ts"], tmp_path
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    types = (tmp_path / "seats.d.ts").read_text()
    assert "purchaseSeats: {" in types
    assert '"Idempotency-Key": string;' in types
    usage = (TS / "usage.ts").read_text()
    (tmp_path / "usage.ts").write_text(usage)
    mistakes = MISTAKE.findall(usage)
    assert len(mistakes) >= 5
    # each mistake in a copy of its own, all checked by one compiler run
    for name, line in mistakes:
        (tmp_path / f"mistake-{name}.ts").write_text(f"{usage}\n{line}\n")
    files = ["usage.ts", *(f"mistake-{name}.ts" for name, _ in mistakes)]
    checked = run([str(tools / "tsc"), *TSC_OPTIONS, *files], tmp_path)

    failing = set(re.findall(r"^([\w.-]+)\.ts\(\d+,\d+\): error TS\d+", checked.stdout, re.M))
    assert "usage" not in failing, checked.stdout
    assert checked.returncode != 0
    for name, line in mistakes:
        assert f"mistake-{name}" in failing, f"this compiled: {line}"
