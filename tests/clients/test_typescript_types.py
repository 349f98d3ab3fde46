"""TypeScript types generated with openapi-typescript compile a front end's usage strictly.

The two npm packages (versions pinned in tests/clients/ts/package.json) are installed in a
temporary folder; the types are generated from the running server's document; usage.ts must
pass ``tsc --strict`` and each of its marked mistakes (a misspelled error code, a null key,
...) must fail to compile: the document types what a front end relies on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients.conftest import tool_or_skip

pytestmark = pytest.mark.server

TS = Path(__file__).parent / "ts"
MISTAKE = re.compile(r"^// @mistake ([a-z-]+): (.+)$", re.M)


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """openapi-typescript and typescript, installed from the npm registry into a temp folder."""
    npm = tool_or_skip("npm")
    tool_or_skip("node")
    folder = tmp_path_factory.mktemp("npm-tools")
    shutil.copyfile(TS / "package.json", folder / "package.json")
    done = run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder / "node_modules" / ".bin"


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
