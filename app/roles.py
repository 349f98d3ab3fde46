"""The runtime database role: exactly what the service needs, granted by every ``seats migrate``.

SPEC §7: on PostgreSQL the owner runs the migrations and the service connects as another role
(``SEATS_DATABASE_APP_ROLE``). That role may read and insert everywhere, update only the
tables whose rows change and, on an invoice, only its status columns; it may delete only
rows the service itself purges or frees; it may never TRUNCATE, own anything or run DDL.
So even with the service's credentials, the ledger cannot be rewritten: the privileges stop
most statements and the append-only triggers (which it cannot drop or disable, as it owns
nothing) stop the rest.

The grants are re-applied by every ``seats migrate``, after the upgrade: a table added by a
later migration is covered the moment it exists, and one missing from ``PRIVILEGES`` stops
the migration, so nobody can forget to decide what the service may do with it.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Connection

# Table -> the privileges of the runtime role. Column lists are column-level grants.
PRIVILEGES: dict[str, str] = {
    # The directory: the platform upserts accounts and users, and removes users.
    "account": "SELECT, INSERT, UPDATE",
    "account_user": "SELECT, INSERT, UPDATE, DELETE",
    # The plan: counters and status change in place; plans are never deleted.
    "plan": "SELECT, INSERT, UPDATE",
    # Unassigning deletes the row (the event records it).
    "assignment": "SELECT, INSERT, DELETE",
    # Quotes are never edited; the billing run purges expired ones.
    "quote": "SELECT, INSERT, DELETE",
    # Stored responses are completed in place and purged after the retention.
    "idempotency_key": "SELECT, INSERT, UPDATE, DELETE",
    "test_clock": "SELECT, INSERT, UPDATE",
    # The ledger (R11): append-only, except an invoice's one-way status change, which the
    # trigger restricts further (pending -> a final status, nothing else changed).
    "invoice": "SELECT, INSERT, UPDATE (status, paid_at, charge_id, failure_reason)",
    "invoice_line": "SELECT, INSERT",
    # The last invoice number per account: raised by each new invoice (SPEC §10).
    "invoice_counter": "SELECT, INSERT, UPDATE",
    "charge_attempt": "SELECT, INSERT",
    "charge_outcome": "SELECT, INSERT",
    "event": "SELECT, INSERT",
    # The billing run's marks of reminders sent (R16): added once, never changed.
    "reminder": "SELECT, INSERT",
    # Read by the start-up check and /readyz.
    # Webhooks (SPEC §8): endpoints are managed, deliveries claimed and updated by the
    # worker; deleting an endpoint deletes its queue and log with it.
    "webhook_endpoint": "SELECT, INSERT, UPDATE, DELETE",
    "webhook_delivery": "SELECT, INSERT, UPDATE, DELETE",
    "webhook_attempt": "SELECT, INSERT, DELETE",
    "alembic_version": "SELECT",
}

# Function -> the runtime role's privilege on it. Their migrations revoke EXECUTE from
# PUBLIC, so only the runtime role (and the owner) may call them.
ROUTINE_PRIVILEGES: dict[str, str] = {
    # The agent check behind a transaction pooler (app/seats/repository.py).
    "seats_agent_check(text, text, text, boolean)": "EXECUTE",
}

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")


class RoleError(RuntimeError):
    """The runtime role cannot be granted safely (missing, too powerful, unknown tables)."""


def grant_runtime_role(conn: Connection, role: str) -> None:
    """Make ``role``'s privileges on the schema exactly ``PRIVILEGES`` (PostgreSQL only)."""
    if not _ROLE_NAME.fullmatch(role):
        raise RoleError(f"SEATS_DATABASE_APP_ROLE {role!r} is not a plain lower-case role name")
    found = conn.execute(
        text(
            "SELECT rolsuper, rolbypassrls, rolname = current_user FROM pg_roles "
            "WHERE rolname = :role"
        ),
        {"role": role},
    ).first()
    if found is None:
        raise RoleError(
            f"SEATS_DATABASE_APP_ROLE names {role!r}, which does not exist: "
            f"create it first (CREATE ROLE {role} LOGIN PASSWORD '...')"
        )
    superuser, bypass_rls, is_owner = found
    if is_owner:
        raise RoleError(f"SEATS_DATABASE_APP_ROLE {role!r} is the migrating owner itself")
    if superuser or bypass_rls:
        raise RoleError(f"SEATS_DATABASE_APP_ROLE {role!r} is a superuser: no grant can limit it")
    schema = conn.scalar(text("SELECT current_schema()"))
    tables = set(
        conn.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"),
            {"schema": schema},
        )
    )
    unknown = sorted(tables - PRIVILEGES.keys())
    if unknown:
        raise RoleError(
            f"tables {', '.join(unknown)} are not in app.roles.PRIVILEGES: "
            "say what the runtime role may do with them"
        )
    quote = conn.dialect.identifier_preparer.quote
    who, where = quote(role), quote(str(schema))
    # No CREATE: the role cannot add tables, functions or triggers (PostgreSQL before 15
    # gave CREATE on the public schema to PUBLIC). Revoking from PUBLIC is a no-op
    # with a notice when the owner does not own the schema.
    conn.execute(text(f"REVOKE CREATE ON SCHEMA {where} FROM PUBLIC"))
    conn.execute(text(f"REVOKE CREATE ON SCHEMA {where} FROM {who}"))
    conn.execute(text(f"GRANT USAGE ON SCHEMA {where} TO {who}"))
    for table in sorted(tables):
        name = f"{where}.{quote(table)}"
        # Revoke first, so that re-applying removes anything granted by hand since (a
        # table-level REVOKE also revokes every column-level grant on the table).
        conn.execute(text(f"REVOKE ALL ON TABLE {name} FROM {who}"))
        conn.execute(text(f"GRANT {PRIVILEGES[table]} ON TABLE {name} TO {who}"))
    for routine, privileges in sorted(ROUTINE_PRIVILEGES.items()):
        conn.execute(text(f"REVOKE ALL ON FUNCTION {where}.{routine} FROM {who}"))
        conn.execute(text(f"GRANT {privileges} ON FUNCTION {where}.{routine} TO {who}"))
    conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {where} FROM {who}"))
    conn.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {where} TO {who}"))
