"""A plan's scheduled decrease (R15): the total it leaves and the period end it waits for.

Both NULL when nothing is scheduled (every existing plan). ``scheduled_for`` is the end of the
period the plan was billed under when the decrease was scheduled (R12): the decrease takes
effect at 00:00 UTC that day, and the renewal that starts there bills ``scheduled_seats``.

Revision ID: 0010_scheduled_change
Revises: 0009_invoice_numbers
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_scheduled_change"
down_revision: str | None = "0009_invoice_numbers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = (
    "(scheduled_seats IS NULL) = (scheduled_for IS NULL) AND "
    "(scheduled_seats IS NULL OR scheduled_seats >= 0)"
)


def _rebuild_on_sqlite() -> None:
    # SQLite adds a CHECK constraint only by rebuilding the table, which others reference:
    # possible only with the foreign-key checks deferred to the commit.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA defer_foreign_keys = ON")


def upgrade() -> None:
    _rebuild_on_sqlite()
    with op.batch_alter_table("plan", recreate="auto") as batch:
        batch.add_column(sa.Column("scheduled_seats", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("scheduled_for", sa.Date(), nullable=True))
        batch.create_check_constraint(op.f("ck_plan_scheduled_change"), sa.text(CHECK))


def downgrade() -> None:
    _rebuild_on_sqlite()
    with op.batch_alter_table("plan", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_plan_scheduled_change"), type_="check")
        batch.drop_column("scheduled_for")
        batch.drop_column("scheduled_seats")
