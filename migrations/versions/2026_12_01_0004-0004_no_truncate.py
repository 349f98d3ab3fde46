"""The ledger and the audit log refuse TRUNCATE, for every role (R11).

Row triggers do not fire on TRUNCATE, so on PostgreSQL a statement-level trigger refuses it
on each append-only table; it fires for the tables' owner and for superusers too (only a
superuser's ``session_replication_role = replica`` skips it, as it skips every trigger).
SQLite has no TRUNCATE: its row triggers already refuse ``DELETE FROM``.

Revision ID: 0004_no_truncate
Revises: 0003_collection
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_no_truncate"
down_revision: str | None = "0003_collection"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEDGER_TABLES = ("invoice", "invoice_line", "charge_attempt", "charge_outcome", "event")


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    # seats_append_only() (0002) raises "table <t> is append-only (TRUNCATE)", restrict_violation.
    for table in LEDGER_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION seats_append_only()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table in LEDGER_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
