"""Every fast path (app/fast/) says in one line what was measured, and runs only on the versions
of the frameworks it leans on that it was measured and tested with: a FastAPI, Starlette,
uvicorn, httptools, SQLAlchemy or asyncpg past them fails here, loudly, until the path is
measured again (docs/benchmarks.md) and its range moved."""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import version
from types import ModuleType

import pytest
from packaging.version import Version

import app.fast

MODULES: list[ModuleType] = [
    importlib.import_module(f"app.fast.{m.name}") for m in pkgutil.iter_modules(app.fast.__path__)
]
IDS = [m.__name__ for m in MODULES]


@pytest.mark.parametrize("module", MODULES, ids=IDS)
def test_each_fast_path_runs_on_the_framework_versions_it_was_measured_with(
    module: ModuleType,
) -> None:
    for package, (low, high) in module.LEANS_ON.items():
        installed = version(package)
        assert Version(low) <= Version(installed) < Version(high), (
            f"{module.__name__} leans on {package} {installed}, measured with >= {low}, < {high}: "
            "measure it again (docs/benchmarks.md) and move the range, or drop the fast path"
        )


@pytest.mark.parametrize("module", MODULES, ids=IDS)
def test_each_fast_path_says_what_was_measured_in_one_line(module: ModuleType) -> None:
    lines = (module.__doc__ or "").splitlines()
    assert lines[0].startswith("Measured: "), module.__name__
    assert len(lines) == 1 or lines[1] == "", module.__name__


def test_every_framework_internal_a_fast_path_leans_on_is_pinned() -> None:
    pinned = {package for module in MODULES for package in module.LEANS_ON}
    assert {"fastapi", "starlette", "uvicorn", "httptools", "sqlalchemy", "asyncpg"} <= pinned
    assert len(MODULES) == 3, IDS  # routes, the HTTP protocol, the driver reads
