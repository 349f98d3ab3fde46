"""Announce every change to what the agent check answers, for the workers' caches (issue 13).

The agent check's answer comes from four tables: the target's and the caller's
``account_user`` rows, the ``assignment``, the ``plan``'s status and trial end, and the
stored test clock. On PostgreSQL each change to them sends ``NOTIFY seats_access`` with the
account's id (``*`` for the clock, which every account reads) from a trigger, so in the same
transaction as the change, whichever code path, role or tool made it: PostgreSQL delivers it
at commit, and never for a rollback. A worker that listens drops what it cached for that
account (app/entitlements.py). Notifications with the same payload in one transaction are
sent once.

Only changes that can alter an answer notify: users removed (a new user or account was never
cached: only answers about existing users are), seats assigned or freed, a plan created,
removed or changed in status or trial end (its seat counts and billing fields do not notify:
a purchase raising ``seats`` sends nothing). TRUNCATE, which fires no row trigger, flushes
everything. SQLite has no NOTIFY, and its workers cache nothing.

Revision ID: 0007_access_notify
Revises: 0006_drop_plan_version
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_access_notify"
down_revision: str | None = "0006_drop_plan_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "seats_access"

FUNCTIONS = {
    # A row trigger: the changed row's account. NEW is null on DELETE, OLD on INSERT.
    "seats_access_changed": f"""
        BEGIN
            PERFORM pg_notify('{CHANNEL}', COALESCE(NEW.account_id, OLD.account_id));
            RETURN NULL;
        END
    """,
    # A change every account's answer depends on (the test clock, a TRUNCATE).
    "seats_access_flush": f"""
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '*');
            RETURN NULL;
        END
    """,
}

TRIGGERS = (
    ("assignment_access", "assignment", "INSERT OR UPDATE OR DELETE", "ROW", "changed", ""),
    ("account_user_access", "account_user", "DELETE", "ROW", "changed", ""),
    ("account_user_access_moved", "account_user", "UPDATE OF account_id, id", "ROW", "changed", ""),
    ("plan_access", "plan", "INSERT OR DELETE", "ROW", "changed", ""),
    (
        "plan_access_status",
        "plan",
        "UPDATE OF status, trial_ends_at",
        "ROW",
        "changed",
        "WHEN (OLD.status IS DISTINCT FROM NEW.status"
        " OR OLD.trial_ends_at IS DISTINCT FROM NEW.trial_ends_at)",
    ),
    ("test_clock_access", "test_clock", "INSERT OR UPDATE OR DELETE", "STATEMENT", "flush", ""),
    *(
        (f"{table}_access_truncate", table, "TRUNCATE", "STATEMENT", "flush", "")
        for table in ("assignment", "account_user", "plan", "account", "test_clock")
    ),
)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for name, body in FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$"
        )
    for name, table, events, level, function, when in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} AFTER {events} ON {table} FOR EACH {level} {when} "
            f"EXECUTE FUNCTION seats_access_{function}()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for name, table, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
