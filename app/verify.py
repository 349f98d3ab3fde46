"""``seats verify``: every invariant of the ledger and the seat counts, checked in SQL.

Each check is a query that returns the rows violating it; an empty result is a pass. The
race, fault and scenario tests end by running it, and operators can run it at any time.
"""

from __future__ import annotations

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
    "paid seats are backed by a paid invoice": """
        SELECT p.account_id, p.seats FROM plan p
        WHERE p.status IN ('active', 'past_due') AND p.seats > 0 AND NOT EXISTS (
            SELECT 1 FROM invoice i WHERE i.account_id = p.account_id
              AND i.kind = 'purchase' AND i.status = 'paid')
    """,
    "no orphan rows": """
        SELECT 'plan' AS t, account_id AS id FROM plan
          WHERE account_id NOT IN (SELECT id FROM account)
        UNION ALL SELECT 'assignment', account_id || '/' || user_id FROM assignment a
          WHERE NOT EXISTS (SELECT 1 FROM account_user u
                            WHERE u.account_id = a.account_id AND u.id = a.user_id)
        UNION ALL SELECT 'invoice_line', invoice_id FROM invoice_line
          WHERE invoice_id NOT IN (SELECT id FROM invoice)
        UNION ALL SELECT 'charge_attempt', invoice_id FROM charge_attempt
          WHERE invoice_id NOT IN (SELECT id FROM invoice)
        UNION ALL SELECT 'charge_outcome', o.invoice_id FROM charge_outcome o
          WHERE NOT EXISTS (SELECT 1 FROM charge_attempt a
                            WHERE a.invoice_id = o.invoice_id AND a.number = o.number)
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


async def verify(db: Database) -> list[Violation]:
    """Run every check; the violations found (none means the data is consistent)."""
    violations = []
    async with db.engine.connect() as conn:
        for name, query in CHECKS.items():
            rows = [tuple(r) for r in (await conn.execute(text(query))).all()]
            if rows:
                violations.append(Violation(name, rows))
    return violations
