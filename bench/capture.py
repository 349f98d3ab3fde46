"""Capture the SQL each endpoint really sends, from PostgreSQL's own statement log.

With ``log_statement = 'all'`` (set with ALTER SYSTEM and a reload, so the service's pooled
connections pick it up too) every statement a backend runs is written to the server log with
its parameters. One request of each kind is sent between two marker statements, and the lines
of the service's backends (``application_name``) in between are the statements of that request.

``bench/run`` compares them with the statements of ``bench/sql/*.sql`` on every run and prints
any drift; ``BENCH_CAPTURE_DIR=dir`` also writes what it captured there.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg

_LINE = re.compile(r"^\[(?P<app>[^\]]*)\] (?P<level>[A-Z]+):  (?P<text>.*)$")
# What a new connection sends once (server version, schema, type introspection): not part of
# any request's work once the pools are warm.
_SETUP = re.compile(r"pg_catalog\.|current_schema\(\)|^show ", re.I)
_STMT = re.compile(r"^(?:statement|execute [^:]*): (?P<sql>.*)$", re.S)


async def enable(conn: asyncpg.Connection) -> None:
    await conn.execute("ALTER SYSTEM SET log_line_prefix = '[%a] '")
    await conn.execute("ALTER SYSTEM SET log_statement = 'all'")
    await conn.execute("SELECT pg_reload_conf()")
    # Backends, ours included, read the new settings at their next command.
    await asyncio.sleep(0.5)
    await conn.execute("SELECT 1")


async def disable(conn: asyncpg.Connection) -> None:
    await conn.execute("ALTER SYSTEM RESET log_statement")
    await conn.execute("SELECT pg_reload_conf()")


async def mark(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(f"SELECT 'bench-mark {name}'")


def parse(log: str, name: str, app: str) -> list[tuple[str, str]]:
    """(statement, parameters) of ``app``'s backends between the two markers of ``name``."""
    entries: list[list[str]] = []  # [app, level, text] with continuation lines joined
    for raw in log.splitlines():
        m = _LINE.match(raw)
        if m:
            entries.append([m["app"], m["level"], m["text"]])
        elif entries and raw.startswith("\t"):
            entries[-1][2] += "\n" + raw[1:]
    out: list[tuple[str, str]] = []
    inside = in_setup = False
    for entry_app, level, text in entries:
        if f"'bench-mark {name}'" in text:
            if inside:
                break
            inside = True
            continue
        if not inside or entry_app != app:
            continue
        if level == "LOG" and (s := _STMT.match(text)):
            sql = " ".join(s["sql"].split())
            if _SETUP.search(sql):
                # A new connection's first-use queries run in a BEGIN ... ROLLBACK of their own.
                if out and out[-1][0].startswith("BEGIN"):
                    out.pop()
                    in_setup = True
                continue
            if in_setup and sql.startswith("ROLLBACK"):
                in_setup = False
                continue
            out.append((sql, ""))
        elif level == "DETAIL" and text.startswith("parameters:") and out:
            out[-1] = (out[-1][0], text.removeprefix("parameters: "))
    return out


def normalize(sql: str) -> str:
    """A statement's shape: parameters ($1, :var) as ?, whitespace collapsed, no ';'."""
    # pgbench cannot bind a NULL parameter: its scripts write NULL where the service sent one.
    sql = re.sub(r"\$\d+|:[a-z_][a-z0-9_]*|\bNULL(?=::)", "?", sql)
    sql = " ".join(sql.split()).rstrip(";").strip()
    # SQLAlchemy names the isolation level once a connection's level was reset (after an
    # AUTOCOMMIT read), and not before: the same statement either way.
    return "BEGIN" if sql == "BEGIN ISOLATION LEVEL READ COMMITTED" else sql


def script_statements(path: Path) -> list[str]:
    """The SQL statements of a pgbench script (meta-commands and comments left out)."""
    stmts, current = [], []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("--", "\\")):
            continue
        current.append(stripped)
        if stripped.endswith(";"):
            stmts.append(normalize(" ".join(current)))
            current = []
    return stmts
