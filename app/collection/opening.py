"""SQL of opening an invoice for collection (``Collector.open``): a purchase's pending invoice,
written once.

The pending invoice, its line, the plan's note of it and its first attempt go in together
(SPEC §6: committed before the gateway is called). On PostgreSQL that is one statement, a
data-modifying CTE built once; SQLite sends the same writes one statement each, in the
transaction that holds its write lock. Both write the same rows or none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import BindParameter, Select, Table, bindparam, exists, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.ledger.models import ChargeAttempt, Invoice, InvoiceLine
from app.plan import repository as plans
from app.plan import transitions
from app.upsert import insert_new

_INVOICE = cast(Table, Invoice.__table__)
_LINE = cast(Table, InvoiceLine.__table__)
_ATTEMPT = cast(Table, ChargeAttempt.__table__)

# The columns each row is written with (the invoice's others start NULL); the line and the
# attempt take their invoice id from the invoice written, not from a parameter.
_INVOICE_COLUMNS = (
    "id",
    "account_id",
    "sequence",
    "number",
    "kind",
    "status",
    "currency",
    "total",
    "seats",
    "period_start",
    "period_end",
    "billing_cycle",
    "payment_method",
    "request_key",
    "request_fingerprint",
    "created_by",
    "created_at",
)
_LINE_COLUMNS = (
    "position",
    "description",
    "quantity",
    "unit_price",
    "amount",
    "period_start",
    "period_end",
    "seats_before",
    "seats_after",
    "days",
    "days_in_period",
)
_ATTEMPT_COLUMNS = (
    "number",
    "operation",
    "gateway_key",
    "payment_method",
    "amount",
    "currency",
    "created_by",
    "at",
    "sent_at",
)


def _binds(table: Table, prefix: str, columns: tuple[str, ...]) -> dict[str, BindParameter[Any]]:
    # Parameters are never named like a column: an UPDATE run with one would also SET it.
    return {name: bindparam(f"{prefix}_{name}", type_=table.c[name].type) for name in columns}


_I = _binds(_INVOICE, "inv", _INVOICE_COLUMNS)
_L = _binds(_LINE, "line", _LINE_COLUMNS)
_A = _binds(_ATTEMPT, "att", _ATTEMPT_COLUMNS)


def _pending_pg(*, with_attempt: bool) -> Select[Any]:
    """The four writes as one PostgreSQL statement. The invoice is claimed by its request's
    key (``ON CONFLICT (request_key) DO NOTHING``: a retry's insert writes nothing); the
    others are written once per invoice row inserted, so a retry's writes nothing at all.
    Answers whether the invoice was written."""
    written = (
        postgresql.insert(_INVOICE)
        .values(_I)
        .on_conflict_do_nothing(index_elements=[_INVOICE.c.request_key])
        .returning(_INVOICE.c.id)
        .cte("written_invoice")
    )
    line = (
        insert(_LINE)
        .from_select(["invoice_id", *_LINE_COLUMNS], select(written.c.id, *_L.values()))
        .cte("written_line")
    )
    # The plan is locked by this transaction already (the one lock order: plan first).
    noted = plans.write_statement(
        _I["account_id"],
        transitions.note_purchase(_I["id"], _I["seats"]),
        _I["created_at"],
        when=exists(select(written.c.id)),
    ).cte("noted_plan")
    ctes = [line, noted]
    if with_attempt:
        attempt = (
            insert(_ATTEMPT)
            .from_select(["invoice_id", *_ATTEMPT_COLUMNS], select(written.c.id, *_A.values()))
            .cte("first_attempt")
        )
        ctes.append(attempt)
    return select(exists(select(written.c.id)).label("written")).add_cte(*ctes)


# Built once: every purchase sends one of these.
_PENDING_PG = {flag: _pending_pg(with_attempt=flag) for flag in (True, False)}


def _params(prefix: str, columns: tuple[str, ...], row: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{name}": row[name] for name in columns}


async def add_pending(
    session: AsyncSession,
    invoice: Mapping[str, Any],
    line: Mapping[str, Any],
    attempt: Mapping[str, Any] | None,
) -> bool:
    """Write a purchase's pending invoice (``invoice``: its column values), its one line, the
    plan's note that it waits for it (``pending_invoice_id``, ``pending_seats``) and its first
    attempt (None: nothing to charge), with the plan locked. False, and nothing written, if
    its request already has an invoice (a retry: the caller then reads that one)."""
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        params = _params("inv", _INVOICE_COLUMNS, invoice) | _params("line", _LINE_COLUMNS, line)
        if attempt is not None:
            params |= _params("att", _ATTEMPT_COLUMNS, attempt)
        found = await conn.scalar(_PENDING_PG[attempt is not None], params)
        return bool(found)
    return await _add_pending_plain(conn, invoice, line, attempt)


async def _add_pending_plain(
    conn: AsyncConnection,
    invoice: Mapping[str, Any],
    line: Mapping[str, Any],
    attempt: Mapping[str, Any] | None,
) -> bool:
    # Only a conflict on the request's key is expected: any other (a second pending purchase
    # of the account) still raises, as on PostgreSQL.
    values = {name: invoice[name] for name in _INVOICE_COLUMNS}
    claim = insert_new(_INVOICE, conn.dialect.name, values, on=[_INVOICE.c.request_key])
    if await conn.scalar(claim.returning(_INVOICE.c.id)) is None:
        return False
    invoice_id = invoice["id"]
    await conn.execute(
        insert(_LINE).values(invoice_id=invoice_id, **{n: line[n] for n in _LINE_COLUMNS})
    )
    await conn.execute(
        plans.write_statement(
            invoice["account_id"],
            transitions.note_purchase(invoice_id, invoice["seats"]),
            invoice["created_at"],
        )
    )
    if attempt is not None:
        await conn.execute(
            insert(_ATTEMPT).values(
                invoice_id=invoice_id, **{n: attempt[n] for n in _ATTEMPT_COLUMNS}
            )
        )
    return True
