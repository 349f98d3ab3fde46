"""Seats and the ledger: plans, agents, quotes, invoices, charge attempts, events.

The ledger and the audit log are append-only, enforced by triggers on both databases
(R11): an invoice may only move once from pending to paid or failed.

Revision ID: 0002_seats_ledger
Revises: 0001_directory
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_seats_ledger"
down_revision: str | None = "0001_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('plan',
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seats', sa.BigInteger(), nullable=False),
    sa.Column('assigned', sa.BigInteger(), nullable=False),
    sa.Column('trial_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('trial_ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('period_end', sa.Date(), nullable=True),
    sa.Column('pending_invoice_id', sa.String(length=40), nullable=True),
    sa.Column('pending_seats', sa.BigInteger(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("assigned <= seats OR status = 'trial_expired'", name=op.f('ck_plan_assigned_le_seats')),
    sa.CheckConstraint("status IN ('none', 'trialing', 'trial_expired', 'active', 'past_due')", name=op.f('ck_plan_status')),
    sa.CheckConstraint('(period_start IS NULL) = (period_end IS NULL) AND (period_start IS NULL OR period_start < period_end)', name=op.f('ck_plan_period')),
    sa.CheckConstraint('assigned >= 0', name=op.f('ck_plan_assigned_not_negative')),
    sa.CheckConstraint('seats >= 0', name=op.f('ck_plan_seats_not_negative')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_plan_account_id_account')),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_plan'))
    )
    op.create_table('assignment',
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assigned_by', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'user_id'], ['account_user.account_id', 'account_user.id'], name=op.f('fk_assignment_account_id_account_user')),
    sa.ForeignKeyConstraint(['account_id'], ['plan.account_id'], name=op.f('fk_assignment_account_id_plan')),
    sa.PrimaryKeyConstraint('account_id', 'user_id', name=op.f('pk_assignment'))
    )
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.create_index('ix_assignment_account_id_assigned_at', ['account_id', 'assigned_at', 'user_id'], unique=False)
    op.create_table('quote',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('current_seats', sa.BigInteger(), nullable=False),
    sa.Column('seats', sa.BigInteger(), nullable=False),
    sa.Column('unit_price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('billing_cycle', sa.String(length=16), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('due_now', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_quote_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quote'))
    )
    with op.batch_alter_table('quote', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quote_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quote_expires_at'), ['expires_at'], unique=False)
    op.create_table('invoice',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('seats', sa.BigInteger(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('payment_method', sa.String(length=200), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('charge_id', sa.String(length=200), nullable=True),
    sa.Column('failure_reason', sa.String(length=200), nullable=True),
    sa.CheckConstraint("kind IN ('purchase', 'renewal')", name=op.f('ck_invoice_kind')),
    sa.CheckConstraint("status != 'paid' OR paid_at IS NOT NULL", name=op.f('ck_invoice_paid_has_paid_at')),
    sa.CheckConstraint("status IN ('pending', 'paid', 'failed')", name=op.f('ck_invoice_status')),
    sa.CheckConstraint('total >= 0', name=op.f('ck_invoice_total_not_negative')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_invoice_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice')),
    sa.UniqueConstraint('charge_id', name=op.f('uq_invoice_charge_id')),
    sa.UniqueConstraint('request_key', name=op.f('uq_invoice_request_key'))
    )
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_account_id_created_at', ['account_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_invoice_status_pending', ['status'], unique=False, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.create_index('uq_invoice_pending_purchase', ['account_id'], unique=True, sqlite_where=sa.text("kind = 'purchase' AND status = 'pending'"), postgresql_where=sa.text("kind = 'purchase' AND status = 'pending'"))
        batch_op.create_index('uq_invoice_renewal_period', ['account_id', 'period_start'], unique=True, sqlite_where=sa.text("kind = 'renewal'"), postgresql_where=sa.text("kind = 'renewal'"))
    op.create_table('invoice_line',
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('unit_price', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_invoice_line_amount_not_negative')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_invoice_line_invoice_id_invoice')),
    sa.PrimaryKeyConstraint('invoice_id', 'position', name=op.f('pk_invoice_line'))
    )
    op.create_table('charge_attempt',
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('gateway_key', sa.String(length=60), nullable=False),
    sa.Column('payment_method', sa.String(length=200), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("outcome IN ('succeeded', 'declined', 'unavailable')", name=op.f('ck_charge_attempt_outcome')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_charge_attempt_invoice_id_invoice')),
    sa.PrimaryKeyConstraint('invoice_id', 'number', name=op.f('pk_charge_attempt'))
    )
    op.create_table('event',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_event_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event'))
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index('ix_event_account_id_at', ['account_id', 'at', 'id'], unique=False)
    create_append_only_triggers()


def downgrade() -> None:
    drop_append_only_triggers()
    op.drop_table('event')
    op.drop_table('charge_attempt')
    op.drop_table('invoice_line')
    op.drop_table('invoice')
    op.drop_table('quote')
    op.drop_table('assignment')
    op.drop_table('plan')


APPEND_ONLY = ("invoice_line", "charge_attempt", "event")
# Columns an invoice may never change, even in its one allowed transition.
FROZEN_INVOICE_COLUMNS = (
    "id",
    "account_id",
    "kind",
    "currency",
    "total",
    "seats",
    "period_start",
    "period_end",
    "payment_method",
    "request_key",
    "created_by",
    "created_at",
)


def create_append_only_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        same = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in FROZEN_INVOICE_COLUMNS)
        op.execute(
            """
            CREATE FUNCTION seats_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'table % is append-only (%)', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'restrict_violation';
            END $$
            """
        )
        op.execute(
            f"""
            CREATE FUNCTION seats_invoice_update() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF OLD.status = 'pending' AND NEW.status IN ('paid', 'failed') AND {same} THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION 'invoice % may only change once, from pending to paid or failed',
                    OLD.id USING ERRCODE = 'restrict_violation';
            END $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION seats_append_only()"
            )
        op.execute(
            "CREATE TRIGGER invoice_append_only BEFORE DELETE ON invoice "
            "FOR EACH ROW EXECUTE FUNCTION seats_append_only()"
        )
        op.execute(
            "CREATE TRIGGER invoice_one_way_status BEFORE UPDATE ON invoice "
            "FOR EACH ROW EXECUTE FUNCTION seats_invoice_update()"
        )
        return
    # SQLite: the same guarantees with RAISE(ABORT).
    same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in FROZEN_INVOICE_COLUMNS)
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only'); END"
            )
    op.execute(
        "CREATE TRIGGER invoice_no_delete BEFORE DELETE ON invoice "
        "BEGIN SELECT RAISE(ABORT, 'table invoice is append-only'); END"
    )
    op.execute(
        "CREATE TRIGGER invoice_one_way_status BEFORE UPDATE ON invoice "
        f"WHEN NOT (OLD.status = 'pending' AND NEW.status IN ('paid', 'failed') AND {same}) "
        "BEGIN SELECT RAISE(ABORT, 'invoice may only change once, from pending to paid or failed'); END"
    )


def drop_append_only_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in (*APPEND_ONLY, "invoice"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP TRIGGER IF EXISTS invoice_one_way_status ON invoice")
        op.execute("DROP FUNCTION IF EXISTS seats_invoice_update()")
        op.execute("DROP FUNCTION IF EXISTS seats_append_only()")
        return
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    op.execute("DROP TRIGGER IF EXISTS invoice_no_delete")
    op.execute("DROP TRIGGER IF EXISTS invoice_one_way_status")
