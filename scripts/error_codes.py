#!/usr/bin/env python3
"""The README's table of error codes, generated from the error hierarchy (app/errors.py).

    .venv/bin/python scripts/error_codes.py          # rewrite the table in README.md
    .venv/bin/python scripts/error_codes.py --check  # exit 1 if README.md is out of date

tests/test_error_codes_table.py runs the check, so the table cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.errors import AppError, MethodNotAllowed, error_classes  # noqa: E402
from app.main import create_app  # noqa: E402
from app.openapi import declarations  # noqa: E402
from app.operations import EVERY, Errors  # noqa: E402

README = ROOT / "README.md"
START = "<!-- error-codes:start (scripts/error_codes.py writes this table) -->"
END = "<!-- error-codes:end -->"


def _declared() -> dict[str, Errors]:
    """Each operation's own problems, as its route declares them (app/operations.py)."""
    # Any settings do: the routes are the same whatever they say.
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", jwt_secret="-" * 32)
    app = create_app(settings)
    return {op_id: operation.errors for op_id, operation in declarations(app).items()}


def _operations(cls: type[AppError], declared: dict[str, Errors]) -> str:
    if cls in EVERY:
        return "any"
    if cls is MethodNotAllowed:
        return "any path, with a method it does not serve"
    ids = [op for op, errors in declared.items() if cls in errors]
    return ", ".join(f"`{op}`" for op in ids) or "-"


def render() -> str:
    """The Markdown table: every code once, by status, with what it carries and who answers."""
    declared = _declared()
    rows = [
        "| status | `code` | meaning | extra members | answered by |",
        "|---|---|---|---|---|",
    ]
    for cls in error_classes():
        extras = ", ".join(f"`{name}`" for name in cls.fields) or "-"
        answered = _operations(cls, declared)
        rows.append(f"| {cls.status} | `{cls.code}` | {cls.title}. | {extras} | {answered} |")
    return "\n".join(rows)


def updated(readme: str) -> str:
    """``readme`` with the table between its markers replaced by a fresh one."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    text = README.read_text()
    fresh = updated(text)
    if "--check" in argv:
        if fresh != text:
            print("README.md's error-code table is out of date: run scripts/error_codes.py")
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
