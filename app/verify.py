"""``seats verify``: every invariant of the ledger and the seat counts, checked in SQL.

Each check is a query that returns the rows violating it; an empty result is a pass. The
race, fault and scenario tests end by running it, and operators can run it at any time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text

from app.db import Database

CHECKS: dict[str, str] = {
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
    "invoice total equals the sum of its lines": """
        SELECT i.id, i.total, COALESCE(SUM(l.amount), 0) AS lines
        FROM invoice i LEFT JOIN invoice_line l ON l.invoice_id = i.id
        GROUP BY i.id, i.total
        HAVING i.total != COALESCE(SUM(l.amount), 0)
    """,
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
    "every line is a prorated share of its seats' price": """
        SELECT invoice_id, position, quantity, unit_price, amount FROM invoice_line
        WHERE amount > quantity * unit_price
           OR 366 * amount + 183 < quantity * unit_price
    """,
    "a paid invoice's charge succeeded": """
        SELECT i.id FROM invoice i
        WHERE i.status = 'paid' AND i.total > 0
          AND EXISTS (SELECT 1 FROM charge_attempt c WHERE c.invoice_id = i.id)
          AND NOT EXISTS (SELECT 1 FROM charge_outcome o
                          WHERE o.invoice_id = i.id AND o.outcome = 'succeeded')
    """,
    "every agent has its agent.assigned event": """
        SELECT a.account_id, a.user_id FROM assignment a
        WHERE NOT EXISTS (
            SELECT 1 FROM event e WHERE e.account_id = a.account_id
              AND e.type = 'agent.assigned' AND JSON_TEXT(e.data, 'user_id') = a.user_id)
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
        SELECT i.id, i.kind, i.status FROM invoice i
        WHERE (i.kind = 'renewal' OR (i.kind = 'purchase' AND i.status = 'paid'))
          AND NOT EXISTS (
            SELECT 1 FROM event e WHERE e.account_id = i.account_id
              AND JSON_TEXT(e.data, 'invoice_id') = i.id)
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


async def verify(db: Database) -> list[Violation]:
    """Run every check; the violations found (none means the data is consistent)."""
    violations = []
    async with db.transaction() as session:
        for name, query in CHECKS.items():
            sql = text(for_dialect(query, db.dialect_name))
            rows = [tuple(r) for r in (await session.execute(sql)).all()]
            if rows:
                violations.append(Violation(name, rows))
    return violations
