"""The directory: accounts and users; idempotency keys; the test clock.

Revision ID: 0001_directory
Revises: 
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_directory"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('account',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('billing_cycle', sa.String(length=16), nullable=False),
    sa.Column('billing_anchor', sa.Date(), nullable=False),
    sa.Column('payment_method', sa.String(length=200), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("billing_cycle IN ('monthly', 'yearly')", name=op.f('ck_account_billing_cycle')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account'))
    )
    op.create_table('idempotency_key',
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('caller', sa.String(length=80), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('account_id', 'caller', 'key', name=op.f('pk_idempotency_key'))
    )
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_key_created_at'), ['created_at'], unique=False)
    op.create_table('test_clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('now', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_test_clock'))
    )
    op.create_table('account_user',
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('primary_admin', 'admin', 'user')", name=op.f('ck_account_user_role')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_account_user_account_id_account')),
    sa.PrimaryKeyConstraint('account_id', 'id', name=op.f('pk_account_user'))
    )
    with op.batch_alter_table('account_user', schema=None) as batch_op:
        batch_op.create_index('uq_account_user_primary_admin', ['account_id'], unique=True, sqlite_where=sa.text("role = 'primary_admin'"), postgresql_where=sa.text("role = 'primary_admin'"))


def downgrade() -> None:
    op.drop_table('account_user')
    op.drop_table('test_clock')
    op.drop_table('idempotency_key')
    op.drop_table('account')
