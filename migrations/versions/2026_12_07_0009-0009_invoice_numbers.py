"""Invoices as documents (SPEC §10): numbers gapless per account, lines that explain themselves.

* ``invoice.sequence`` (1, 2, ... per account) and ``invoice.number`` as issued
  (``<PREFIX>-<ACCOUNT PART>-<0001>``), unique per account, and ``invoice_counter``: the last
  sequence taken per account, raised in the transaction that makes each invoice. Existing
  invoices are numbered per account in creation order (``created_at``, then ``id``), with the
  prefix of ``SEATS_INVOICE_PREFIX`` as set when the migration runs, and each counter starts
  at its account's count.
* ``invoice_line.seats_before``, ``seats_after``, ``days``, ``days_in_period``, NULL where an
  existing line cannot tell; existing lines keep their description. Backfilled where the
  ledger itself says it: ``seats_after`` is the invoice's seat total; a renewal's
  ``seats_before`` is the same total (a renewal changes no seats); a purchase's prorated days
  are its line's days (purchase day to period end) of its invoice's period. A purchase's
  ``seats_before`` stays NULL: out of a trial every seat was charged, so its quantity does not
  tell it; a renewal's bridge days stay NULL (the new schedule's period is not stored).
* The one-way invoice trigger also freezes ``sequence`` and ``number``.

The account part is written out here, as it was when this ran (``app/ledger/invoices.py``
``account_part``): a migration must not change with the code after it.

Revision ID: 0009_invoice_numbers
Revises: 0008_agent_check_function
Create Date: 2026-12-07
"""

import base64
import hashlib
import os
import re
from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = "0009_invoice_numbers"
down_revision: str | None = "0008_agent_check_function"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINAL_STATUSES = "('paid', 'failed', 'void', 'uncollectible')"
FROZEN_INVOICE_COLUMNS = (
    "id",
    "account_id",
    "sequence",
    "number",
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
OLD_FROZEN_INVOICE_COLUMNS = tuple(c for c in FROZEN_INVOICE_COLUMNS if c not in ("sequence", "number"))
DEFAULT_PREFIX = "INV"
BATCH = 1000


def _sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def _account_part(account_id: str) -> str:
    return base64.b32encode(hashlib.sha256(account_id.encode()).digest()).decode()[:8]


def _prefix() -> str:
    prefix = os.environ.get("SEATS_INVOICE_PREFIX", DEFAULT_PREFIX)
    if not re.fullmatch(r"[A-Z0-9]{1,12}", prefix):
        raise ValueError(f"SEATS_INVOICE_PREFIX {prefix!r}: 1-12 of A-Z and 0-9")
    return prefix


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _invoice_trigger(frozen: tuple[str, ...]) -> None:
    if not _sqlite():
        same = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in frozen)
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION seats_invoice_update() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF OLD.status = 'pending' AND NEW.status IN {FINAL_STATUSES} AND {same} THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION 'invoice % may only change once, from pending to a final status',
                    OLD.id USING ERRCODE = 'restrict_violation';
            END $$
            """
        )
        return
    same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in frozen)
    op.execute("DROP TRIGGER IF EXISTS invoice_one_way_status")
    op.execute(
        "CREATE TRIGGER invoice_one_way_status BEFORE UPDATE ON invoice "
        f"WHEN NOT (OLD.status = 'pending' AND NEW.status IN {FINAL_STATUSES} AND {same}) "
        "BEGIN SELECT RAISE(ABORT, 'invoice may only change once, from pending to a final "
        "status'); END"
    )


def _guards(on: bool) -> None:
    """The ledger's append-only guards, off while this migration fills the new columns."""
    if not _sqlite():
        verb = "ENABLE" if on else "DISABLE"
        op.execute(f"ALTER TABLE invoice {verb} TRIGGER invoice_one_way_status")
        op.execute(f"ALTER TABLE invoice_line {verb} TRIGGER invoice_line_append_only")
        return
    if on:
        op.execute(
            "CREATE TRIGGER invoice_line_no_update BEFORE UPDATE ON invoice_line "
            "BEGIN SELECT RAISE(ABORT, 'table invoice_line is append-only'); END"
        )
        _invoice_trigger(FROZEN_INVOICE_COLUMNS)
    else:
        op.execute("DROP TRIGGER IF EXISTS invoice_line_no_update")
        op.execute("DROP TRIGGER IF EXISTS invoice_one_way_status")


def upgrade() -> None:
    op.create_table(
        "invoice_counter",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("last >= 0", name=op.f("ck_invoice_counter_last_not_negative")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_invoice_counter_account_id_account")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_invoice_counter")),
    )
    # NOT NULL from the start: a default for the rows there, replaced below.
    op.add_column(
        "invoice", sa.Column("sequence", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.add_column(
        "invoice", sa.Column("number", sa.String(length=60), nullable=False, server_default="")
    )
    for name, type_ in (
        ("seats_before", sa.BigInteger()),
        ("seats_after", sa.BigInteger()),
        ("days", sa.Integer()),
        ("days_in_period", sa.Integer()),
    ):
        op.add_column("invoice_line", sa.Column(name, type_, nullable=True))
    _guards(on=False)
    _backfill()
    _guards(on=True)
    if not _sqlite():
        op.alter_column("invoice", "sequence", server_default=None)
        op.alter_column("invoice", "number", server_default=None)
        _invoice_trigger(FROZEN_INVOICE_COLUMNS)
    op.create_index(
        "uq_invoice_account_id_sequence", "invoice", ["account_id", "sequence"], unique=True
    )
    op.create_index("uq_invoice_account_id_number", "invoice", ["account_id", "number"], unique=True)


def _backfill() -> None:
    conn = op.get_bind()
    prefix = _prefix()
    rows = conn.execute(
        sa.text("SELECT id, account_id FROM invoice ORDER BY account_id, created_at, id")
    ).all()
    counts: dict[str, int] = {}
    numbered = []
    for invoice_id, account_id in rows:
        n = counts[account_id] = counts.get(account_id, 0) + 1
        numbered.append(
            {"id": invoice_id, "seq": n, "num": f"{prefix}-{_account_part(account_id)}-{n:04d}"}
        )
    update = sa.text("UPDATE invoice SET sequence = :seq, number = :num WHERE id = :id")
    for start in range(0, len(numbered), BATCH):
        conn.execute(update, numbered[start : start + BATCH])
    if counts:
        conn.execute(
            sa.text("INSERT INTO invoice_counter (account_id, last) VALUES (:a, :n)"),
            [{"a": a, "n": n} for a, n in counts.items()],
        )
    lines = conn.execute(
        sa.text(
            "SELECT l.invoice_id, l.position, l.period_start, l.period_end, i.kind, i.seats, "
            "i.period_start, i.period_end FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id"
        )
    ).all()
    filled = []
    for invoice_id, position, start, end, kind, seats, inv_start, inv_end in lines:
        purchase = kind == "purchase"
        filled.append(
            {
                "id": invoice_id,
                "pos": position,
                "after": seats,
                "before": None if purchase else seats,
                "days": (_day(end) - _day(start)).days if purchase else None,
                "of": (_day(inv_end) - _day(inv_start)).days if purchase else None,
            }
        )
    fill = sa.text(
        "UPDATE invoice_line SET seats_after = :after, seats_before = :before, days = :days, "
        "days_in_period = :of WHERE invoice_id = :id AND position = :pos"
    )
    for start in range(0, len(filled), BATCH):
        conn.execute(fill, filled[start : start + BATCH])


def downgrade() -> None:
    op.drop_index("uq_invoice_account_id_number", table_name="invoice")
    op.drop_index("uq_invoice_account_id_sequence", table_name="invoice")
    _guards(on=False)
    if not _sqlite():
        _invoice_trigger(OLD_FROZEN_INVOICE_COLUMNS)
    for name in ("days_in_period", "days", "seats_after", "seats_before"):
        op.drop_column("invoice_line", name)
    op.drop_column("invoice", "number")
    op.drop_column("invoice", "sequence")
    if _sqlite():
        op.execute(
            "CREATE TRIGGER invoice_line_no_update BEFORE UPDATE ON invoice_line "
            "BEGIN SELECT RAISE(ABORT, 'table invoice_line is append-only'); END"
        )
        _invoice_trigger(OLD_FROZEN_INVOICE_COLUMNS)
    else:
        op.execute("ALTER TABLE invoice ENABLE TRIGGER invoice_one_way_status")
        op.execute("ALTER TABLE invoice_line ENABLE TRIGGER invoice_line_append_only")
    op.drop_table("invoice_counter")
