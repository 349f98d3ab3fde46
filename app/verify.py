"""``seats verify``: every invariant of the ledger and the seat counts, checked in SQL.

Each check is a query that returns the rows violating it; an empty result is a pass. The
race, fault and scenario tests end by running it, and operators can run it at any time.

Two properties hold whatever the data (R2, R18):

- **No row can make a check fail to answer.** Amounts are computed without overflow: in
  ``numeric`` on PostgreSQL (bigint arithmetic raises on overflow), and on SQLite, whose
  ``SUM`` raises and whose products turn into approximate floats past 64 bits, the rows its
  integers cannot decide are returned as candidates and judged again in Python's integers.
- **Linear in the audit log.** Agents and invoices are matched to their events as two sets
  (``EXCEPT``), never by a correlated subquery per row: SQLite would read the account's
  events once per agent, and one account may have any number of agents.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database

Row = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Check:
    """A query that returns the rows breaking an invariant.

    ``sqlite``: SQLite's own query where 64-bit arithmetic could overflow: it returns the rows
    that may break the invariant, and ``confirm`` keeps (as reported) those that truly do.
    """

    sql: str
    sqlite: str | None = None
    confirm: Callable[[Row], Row | None] | None = None


def _line_is_no_prorated_share(row: Row) -> Row | None:
    _, _, quantity, unit_price, amount = row
    assert isinstance(quantity, int) and isinstance(unit_price, int)
    assert isinstance(amount, int)
    price = quantity * unit_price
    return row if amount > price or 366 * amount + 183 < price else None


def _lines_do_not_add_up(row: Row) -> Row | None:
    invoice_id, total, amounts = row
    lines = sum(int(a) for a in str(amounts).split(",")) if amounts is not None else 0
    return (invoice_id, total, lines) if total != lines else None


CHECKS: dict[str, Check | str] = {
    "assigned count equals assignment rows": """
        SELECT p.account_id, p.assigned, COUNT(a.user_id) AS rows
        FROM plan p LEFT JOIN assignment a ON a.account_id = p.account_id
        GROUP BY p.account_id, p.assigned
        HAVING p.assigned != COUNT(a.user_id)
    """,
    "assigned <= seats while agents have access": """
        SELECT account_id, status, seats, assigned FROM plan
        WHERE status IN ('trialing', 'active', 'past_due') AND assigned > seats
    """,
    # R15: a scheduled decrease lowers a paid plan's total at the end of its period, and R4
    # holds when it takes effect (assignments beyond it are refused meanwhile).
    "a scheduled decrease is below the total, covers the agents, at the period's end": """
        SELECT account_id, status, seats, assigned, scheduled_seats, scheduled_for, period_end
        FROM plan
        WHERE scheduled_seats IS NOT NULL AND (
            status NOT IN ('active', 'past_due')
            OR scheduled_seats >= seats
            OR scheduled_seats < assigned
            OR scheduled_for IS NULL OR period_end IS NULL OR scheduled_for != period_end
        )
    """,
    "invoice total equals the sum of its lines": Check(
        # PostgreSQL sums bigint in numeric.
        """
        SELECT i.id, i.total, COALESCE(SUM(l.amount), 0) AS lines
        FROM invoice i LEFT JOIN invoice_line l ON l.invoice_id = i.id
        GROUP BY i.id, i.total
        HAVING i.total != COALESCE(SUM(l.amount), 0)
        """,
        # TOTAL (a double, never raises) is exact below 2**53 = 9007199254740992; above, the
        # lines' amounts are added again in Python.
        sqlite="""
        SELECT i.id, i.total, GROUP_CONCAT(l.amount) AS lines
        FROM invoice i LEFT JOIN invoice_line l ON l.invoice_id = i.id
        GROUP BY i.id, i.total
        HAVING i.total != TOTAL(l.amount) OR TOTAL(ABS(l.amount)) >= 9007199254740992
            OR ABS(i.total) >= 9007199254740992
        """,
        confirm=_lines_do_not_add_up,
    ),
    "every paid invoice has a charge id (unless free) and a paid_at": """
        SELECT id, total, charge_id, paid_at FROM invoice
        WHERE status = 'paid' AND ((total > 0 AND charge_id IS NULL) OR paid_at IS NULL)
    """,
    "at most one renewal per account and period": """
        SELECT account_id, period_start, COUNT(*) FROM invoice
        WHERE kind = 'renewal' GROUP BY account_id, period_start HAVING COUNT(*) > 1
    """,
    "at most one successful charge per gateway key": """
        SELECT a.gateway_key, COUNT(*) FROM charge_attempt a
        JOIN charge_outcome o ON o.invoice_id = a.invoice_id AND o.number = a.number
        WHERE o.outcome = 'succeeded' GROUP BY a.gateway_key HAVING COUNT(*) > 1
    """,
    "at most one paid invoice per charge id": """
        SELECT charge_id, COUNT(*) FROM invoice
        WHERE charge_id IS NOT NULL GROUP BY charge_id HAVING COUNT(*) > 1
    """,
    "a pending purchase is the one its plan waits for, and back": """
        SELECT i.id, p.pending_invoice_id FROM invoice i
        JOIN plan p ON p.account_id = i.account_id
        WHERE i.kind = 'purchase' AND i.status = 'pending'
          AND (p.pending_invoice_id IS NULL OR p.pending_invoice_id != i.id)
        UNION ALL
        SELECT p.pending_invoice_id, p.account_id FROM plan p
        LEFT JOIN invoice i ON i.id = p.pending_invoice_id AND i.status = 'pending'
        WHERE p.pending_invoice_id IS NOT NULL AND i.id IS NULL
    """,
    # Tamper checks (R11): a row changed behind the triggers' back shows up as a disagreement
    # between the plan, the ledger and the audit log. Only 'paid' counts as paid and only a
    # pending renewal as outstanding, so statuses added later (void, uncollectible) pay nothing.
    "paid seats are covered by the invoices of their period": """
        SELECT p.account_id, p.seats, p.period_end, (
            SELECT MAX(i.seats) FROM invoice i
            WHERE i.account_id = p.account_id AND i.period_end = p.period_end
              AND (i.status = 'paid' OR (i.kind = 'renewal' AND i.status = 'pending'))
        ) AS covered
        FROM plan p
        WHERE p.status IN ('active', 'past_due') AND p.seats > 0 AND p.seats > COALESCE((
            SELECT MAX(i.seats) FROM invoice i
            WHERE i.account_id = p.account_id AND i.period_end = p.period_end
              AND (i.status = 'paid' OR (i.kind = 'renewal' AND i.status = 'pending'))
        ), 0)
    """,
    "a paid period is backed by a paid or outstanding invoice": """
        SELECT p.account_id, p.status, p.period_start, p.period_end FROM plan p
        WHERE p.status IN ('active', 'past_due') AND p.seats > 0 AND (
            p.period_end IS NULL OR NOT EXISTS (
                SELECT 1 FROM invoice i
                WHERE i.account_id = p.account_id AND i.period_end = p.period_end
                  AND i.period_start >= p.period_start
                  AND (i.status = 'paid' OR (i.kind = 'renewal' AND i.status = 'pending'))))
    """,
    "a paid invoice charges for its seats": """
        SELECT i.id, i.seats, i.total FROM invoice i
        WHERE i.status = 'paid' AND i.seats > 0 AND NOT EXISTS (
            SELECT 1 FROM invoice_line l WHERE l.invoice_id = i.id AND l.quantity > 0)
    """,
    "every line is a prorated share of its seats' price": Check(
        """
        SELECT invoice_id, position, quantity, unit_price, amount FROM invoice_line
        WHERE CAST(amount AS numeric) > CAST(quantity AS numeric) * unit_price
           OR 366 * CAST(amount AS numeric) + 183 < CAST(quantity AS numeric) * unit_price
        """,
        # An integer product that overflows becomes a double (typeof 'real'): judged again.
        sqlite="""
        SELECT invoice_id, position, quantity, unit_price, amount FROM invoice_line
        WHERE amount > quantity * unit_price
           OR 366 * amount + 183 < quantity * unit_price
           OR typeof(quantity * unit_price) = 'real' OR typeof(366 * amount + 183) = 'real'
        """,
        confirm=_line_is_no_prorated_share,
    ),
    "a paid invoice's charge succeeded": """
        SELECT i.id FROM invoice i
        WHERE i.status = 'paid' AND i.total > 0
          AND EXISTS (SELECT 1 FROM charge_attempt c WHERE c.invoice_id = i.id)
          AND NOT EXISTS (SELECT 1 FROM charge_outcome o
                          WHERE o.invoice_id = i.id AND o.outcome = 'succeeded')
    """,
    "every agent has its agent.assigned event": """
        SELECT a.account_id, a.user_id FROM assignment a
        EXCEPT
        SELECT e.account_id, JSON_TEXT(e.data, 'user_id') FROM event e
        WHERE e.type = 'agent.assigned'
    """,
    "agents equal assignments minus unassignments in the audit log": """
        SELECT account_id, agents, by_events FROM (
            SELECT p.account_id,
                (SELECT COUNT(*) FROM assignment a WHERE a.account_id = p.account_id) AS agents,
                (SELECT COUNT(*) FROM event e
                 WHERE e.account_id = p.account_id AND e.type = 'agent.assigned')
                - (SELECT COUNT(*) FROM event e
                   WHERE e.account_id = p.account_id AND e.type = 'agent.unassigned')
                  AS by_events
            FROM plan p) AS counts
        WHERE agents != by_events
    """,
    "every paid purchase and every renewal is in the audit log": """
        SELECT i.id, i.kind, i.status FROM invoice i JOIN (
            SELECT v.account_id, v.id FROM invoice v
            WHERE v.kind = 'renewal' OR (v.kind = 'purchase' AND v.status = 'paid')
            EXCEPT
            SELECT e.account_id, JSON_TEXT(e.data, 'invoice_id') FROM event e
        ) AS missing ON missing.id = i.id
    """,
    # SPEC §10: 1..n with no gap nor duplicate, each number once, and the counter at n (the
    # next invoice must not reuse a number nor leave a gap); a counter without invoices too.
    "invoice numbers are gapless and unique per account": """
        SELECT i.account_id, COUNT(*) AS invoices, COUNT(DISTINCT i.sequence) AS sequences,
               MIN(i.sequence) AS first, MAX(i.sequence) AS last,
               COUNT(DISTINCT i.number) AS numbers, MAX(c.last) AS counter
        FROM invoice i LEFT JOIN invoice_counter c ON c.account_id = i.account_id
        GROUP BY i.account_id
        HAVING MIN(i.sequence) != 1 OR MAX(i.sequence) != COUNT(*)
            OR COUNT(DISTINCT i.sequence) != COUNT(*) OR COUNT(DISTINCT i.number) != COUNT(*)
            OR MAX(c.last) IS NULL OR MAX(c.last) != COUNT(*)
        UNION ALL
        SELECT c.account_id, 0, 0, NULL, NULL, 0, c.last FROM invoice_counter c
        WHERE c.last != 0 AND NOT EXISTS (SELECT 1 FROM invoice i WHERE i.account_id = c.account_id)
    """,
    "no orphan rows": """
        SELECT 'plan' AS t, account_id AS id FROM plan
          WHERE account_id NOT IN (SELECT id FROM account)
        UNION ALL SELECT 'assignment', account_id || '/' || user_id FROM assignment a
          WHERE NOT EXISTS (SELECT 1 FROM account_user u
                            WHERE u.account_id = a.account_id AND u.id = a.user_id)
        UNION ALL SELECT 'invoice', id FROM invoice
          WHERE account_id NOT IN (SELECT id FROM account)
        UNION ALL SELECT 'invoice_line', invoice_id FROM invoice_line
          WHERE invoice_id NOT IN (SELECT id FROM invoice)
        UNION ALL SELECT 'charge_attempt', invoice_id FROM charge_attempt
          WHERE invoice_id NOT IN (SELECT id FROM invoice)
        UNION ALL SELECT 'charge_outcome', o.invoice_id FROM charge_outcome o
          WHERE NOT EXISTS (SELECT 1 FROM charge_attempt a
                            WHERE a.invoice_id = o.invoice_id AND a.number = o.number)
        UNION ALL SELECT 'event', id FROM event
          WHERE account_id NOT IN (SELECT id FROM account)
        UNION ALL SELECT 'event of a missing invoice', e.id FROM event e
          WHERE JSON_TEXT(e.data, 'invoice_id') IS NOT NULL
            AND JSON_TEXT(e.data, 'invoice_id') NOT IN (SELECT id FROM invoice)
        UNION ALL SELECT 'quote', id FROM quote
          WHERE account_id NOT IN (SELECT id FROM account)
        UNION ALL SELECT 'account without plan', id FROM account
          WHERE id NOT IN (SELECT account_id FROM plan)
    """,
}


@dataclass(frozen=True, slots=True)
class Violation:
    check: str
    rows: list[tuple[object, ...]]

    def __str__(self) -> str:
        shown = "; ".join(repr(tuple(r)) for r in self.rows[:10])
        more = f" (+{len(self.rows) - 10} more)" if len(self.rows) > 10 else ""
        return f"FAIL {self.check}: {shown}{more}"


# ``JSON_TEXT(column, 'key')`` in a check: a top-level text field of a JSON column.
_JSON_TEXT = re.compile(r"JSON_TEXT\((\w+\.\w+), '(\w+)'\)")


def for_dialect(query: str, dialect: str) -> str:
    """The check's SQL in the database's own spelling of JSON field access."""
    if dialect == "postgresql":
        return _JSON_TEXT.sub(r"(\1 ->> '\2')", query)
    return _JSON_TEXT.sub(r"json_extract(\1, '$.\2')", query)


async def run_check(conn: AsyncConnection, check: Check | str) -> list[Row]:
    """The rows that break one check, on ``conn``'s database."""
    check = Check(check) if isinstance(check, str) else check
    dialect = conn.dialect.name
    query = check.sqlite if dialect == "sqlite" and check.sqlite else check.sql
    rows: list[Row] = [tuple(r) for r in (await conn.execute(text(for_dialect(query, dialect))))]
    if dialect == "sqlite" and check.sqlite and check.confirm:
        confirmed = (check.confirm(r) for r in rows)
        rows = [r for r in confirmed if r is not None]
    return rows


async def verify(db: Database) -> list[Violation]:
    """Run every check; the violations found (none means the data is consistent)."""
    violations = []
    async with db.transaction() as session:
        conn = await session.connection()
        for name, check in CHECKS.items():
            rows = await run_check(conn, check)
            if rows:
                violations.append(Violation(name, rows))
    return violations
