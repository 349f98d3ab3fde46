"""Collection: attempt intents and their outcomes, the plan's billed cycle, new statuses.

* ``charge_attempt`` becomes the intent of one gateway call (committed before the call) and
  ``charge_outcome`` the answer appended after it (SPEC §6); existing attempts are carried over.
* ``plan.billing_cycle``: the cycle the plan's period was billed under (R12); plans with a
  period take their account's current cycle, the only one they can have been billed under.
* Plan status ``canceled`` (R9) and invoice statuses ``void`` and ``uncollectible`` (R11, R14);
  the one-way invoice trigger allows ``pending -> paid | failed | void | uncollectible``.
* ``invoice.request_fingerprint`` (SPEC §5) and ``invoice.billing_cycle``, the cycle it was
  priced under (existing invoices take their account's current cycle).

Revision ID: 0003_collection
Revises: 0002_seats_ledger
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_collection"
down_revision: str | None = "0002_seats_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLAN_STATUSES = "('none', 'trialing', 'trial_expired', 'active', 'past_due', 'canceled')"
OLD_PLAN_STATUSES = "('none', 'trialing', 'trial_expired', 'active', 'past_due')"
INVOICE_STATUSES = "('pending', 'paid', 'failed', 'void', 'uncollectible')"
OLD_INVOICE_STATUSES = "('pending', 'paid', 'failed')"
FINAL_STATUSES = "('paid', 'failed', 'void', 'uncollectible')"
APPEND_ONLY = ("charge_attempt", "charge_outcome")
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
    "request_fingerprint",
    "billing_cycle",
    "created_by",
    "created_at",
)


def _sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    if _sqlite():
        # Rebuilding a table that others reference is only possible with the foreign-key
        # checks deferred to the commit, when every reference holds again.
        op.execute("PRAGMA defer_foreign_keys = ON")
        op.execute("DROP TRIGGER IF EXISTS invoice_no_delete")
        op.execute("DROP TRIGGER IF EXISTS invoice_one_way_status")
    else:
        op.execute("DROP TRIGGER IF EXISTS invoice_one_way_status ON invoice")
        op.execute("DROP FUNCTION IF EXISTS seats_invoice_update()")

    with op.batch_alter_table("plan", recreate="auto") as batch:
        batch.add_column(sa.Column("billing_cycle", sa.String(length=16), nullable=True))
        batch.drop_constraint(op.f("ck_plan_status"), type_="check")
        batch.create_check_constraint("status", f"status IN {PLAN_STATUSES}")
        # A canceled plan keeps its assignments with 0 seats, as an expired trial does (R9).
        batch.drop_constraint(op.f("ck_plan_assigned_le_seats"), type_="check")
        batch.create_check_constraint(
            "assigned_le_seats", "assigned <= seats OR status IN ('trial_expired', 'canceled')"
        )
    op.execute(
        "UPDATE plan SET billing_cycle = (SELECT a.billing_cycle FROM account a "
        "WHERE a.id = plan.account_id) WHERE period_start IS NOT NULL"
    )
    with op.batch_alter_table("invoice", recreate="auto") as batch:
        batch.add_column(sa.Column("request_fingerprint", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("billing_cycle", sa.String(length=16), nullable=True))
        batch.drop_constraint(op.f("ck_invoice_status"), type_="check")
        batch.create_check_constraint("status", f"status IN {INVOICE_STATUSES}")

    op.execute(
        "UPDATE invoice SET billing_cycle = (SELECT a.billing_cycle FROM account a "
        "WHERE a.id = invoice.account_id)"
    )
    op.rename_table("charge_attempt", "charge_attempt_0002")
    if not _sqlite():
        op.execute("ALTER INDEX pk_charge_attempt RENAME TO pk_charge_attempt_0002")
    op.create_table(
        "charge_attempt",
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("gateway_key", sa.String(length=60), nullable=False),
        sa.Column("payment_method", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_charge_attempt_amount_not_negative")),
        sa.CheckConstraint(
            "operation IN ('charge', 'void')", name=op.f("ck_charge_attempt_operation")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoice.id"], name=op.f("fk_charge_attempt_invoice_id_invoice")
        ),
        sa.PrimaryKeyConstraint("invoice_id", "number", name=op.f("pk_charge_attempt")),
    )
    op.create_table(
        "charge_outcome",
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("charge_id", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('succeeded', 'declined', 'voided', 'unavailable', 'rejected')",
            name=op.f("ck_charge_outcome_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id", "number"],
            ["charge_attempt.invoice_id", "charge_attempt.number"],
            name=op.f("fk_charge_outcome_invoice_id_charge_attempt"),
        ),
        sa.PrimaryKeyConstraint("invoice_id", "number", name=op.f("pk_charge_outcome")),
    )
    op.execute(
        "INSERT INTO charge_attempt (invoice_id, number, operation, gateway_key, payment_method, "
        "amount, currency, created_by, at, sent_at) "
        "SELECT c.invoice_id, c.number, 'charge', c.gateway_key, c.payment_method, i.total, "
        "i.currency, 'system:billing', c.at, c.at "
        "FROM charge_attempt_0002 c JOIN invoice i ON i.id = c.invoice_id"
    )
    op.execute(
        "INSERT INTO charge_outcome (invoice_id, number, outcome, reason, charge_id, at) "
        "SELECT c.invoice_id, c.number, c.outcome, c.reason, "
        "CASE WHEN c.outcome = 'succeeded' THEN i.charge_id END, c.at "
        "FROM charge_attempt_0002 c JOIN invoice i ON i.id = c.invoice_id"
    )
    if _sqlite():
        op.execute("DROP TRIGGER IF EXISTS charge_attempt_no_update")
        op.execute("DROP TRIGGER IF EXISTS charge_attempt_no_delete")
    op.drop_table("charge_attempt_0002")
    _create_triggers()


def _create_triggers() -> None:
    if not _sqlite():
        same = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in FROZEN_INVOICE_COLUMNS)
        op.execute(
            f"""
            CREATE FUNCTION seats_invoice_update() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF OLD.status = 'pending' AND NEW.status IN {FINAL_STATUSES} AND {same} THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION 'invoice % may only change once, from pending to a final status',
                    OLD.id USING ERRCODE = 'restrict_violation';
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER invoice_one_way_status BEFORE UPDATE ON invoice "
            "FOR EACH ROW EXECUTE FUNCTION seats_invoice_update()"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION seats_append_only()"
            )
        return
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
        f"WHEN NOT (OLD.status = 'pending' AND NEW.status IN {FINAL_STATUSES} AND {same}) "
        "BEGIN SELECT RAISE(ABORT, 'invoice may only change once, from pending to a final "
        "status'); END"
    )


def downgrade() -> None:
    raise NotImplementedError(
        "0003_collection is not reversible: void and uncollectible invoices and split attempt "
        "outcomes have no place in the 0002 schema. Restore a backup instead."
    )
