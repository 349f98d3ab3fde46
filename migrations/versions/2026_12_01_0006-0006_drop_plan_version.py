"""Drop ``plan.version``: every seat change incremented it and nothing ever read it.

An assignment's write is one statement on PostgreSQL now, and a column that only costs a
write in it has no place there. The downgrade adds it back at 0 for existing plans (the values
it had were never used).

Revision ID: 0006_drop_plan_version
Revises: 0005_webhooks
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_drop_plan_version"
down_revision: str | None = "0005_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite (3.35+) drops a column no constraint or index names in place, as PostgreSQL does.
    op.drop_column("plan", "version")


def downgrade() -> None:
    op.add_column(
        "plan", sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
