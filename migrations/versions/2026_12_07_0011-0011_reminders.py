"""The billing run's reminders (R16): ``trial.ending`` and ``renewal.upcoming`` sent once
each, however many runs overlap, by a row whose primary key a second run's insert hits.

Revision ID: 0011_reminders
Revises: 0010_scheduled_change
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_reminders"
down_revision: str | None = "0010_scheduled_change"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reminder",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_reminder_account_id_account")
        ),
        sa.PrimaryKeyConstraint("account_id", "type", "due_on", name=op.f("pk_reminder")),
    )


def downgrade() -> None:
    op.drop_table("reminder")
