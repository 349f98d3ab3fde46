"""The agent check as a PL/pgSQL function, for the service behind a transaction pooler.

Behind a transaction pooler the service sends every statement unnamed
(``SEATS_DATABASE_POOLER=transaction``, app/db.py), and PostgreSQL parses and plans an
unnamed statement on every execution: for the agent check's five-table join the planning
costs more than running it. PL/pgSQL plans the query inside a function once per server
connection and keeps the plan, and a pooler's server connections are long-lived, so the
service's unnamed ``SELECT ... FROM seats_agent_check($1, $2, $3, $4)`` is all that is
planned per request. The query is ``app/seats/repository.py``'s ``_agent_check_statement``
written out (tests/seats/test_agent_check_function.py proves they answer alike);
``stored_clock`` adds the stored test clock's time, NULL otherwise.

Only the service without ``SEATS_DATABASE_POOLER=transaction`` keeps its own statement,
which asyncpg prepares once per connection anyway. The runtime role is granted EXECUTE by
``seats migrate`` (app/roles.py), and only it: not PUBLIC. SQLite has no functions: nothing.

Revision ID: 0008_agent_check_function
Revises: 0007_access_notify
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_agent_check_function"
down_revision: str | None = "0007_access_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "seats_agent_check(text, text, text, boolean)"

# STABLE: it reads only, so it sees the snapshot of the statement that calls it. The
# variable_conflict option makes any name that is both a column and an output column the
# column's (every column is qualified anyway).
FUNCTION = """
CREATE FUNCTION seats_agent_check(
    account_id text, caller_id text, user_id text, stored_clock boolean
) RETURNS TABLE (
    caller_role varchar,
    user_exists boolean,
    is_agent boolean,
    plan_status varchar,
    trial_ends_at timestamptz,
    stored_now timestamptz
) LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT caller.role, target.id IS NOT NULL, assignment.user_id IS NOT NULL,
           plan.status, plan.trial_ends_at,
           CASE WHEN seats_agent_check.stored_clock
                THEN (SELECT test_clock.now FROM test_clock WHERE test_clock.id = 1) END
    FROM account
    LEFT OUTER JOIN account_user AS caller
        ON caller.account_id = account.id AND caller.id = seats_agent_check.caller_id
    LEFT OUTER JOIN account_user AS target
        ON target.account_id = account.id AND target.id = seats_agent_check.user_id
    LEFT OUTER JOIN assignment
        ON assignment.account_id = account.id
        AND assignment.user_id = seats_agent_check.user_id
    LEFT OUTER JOIN plan ON plan.account_id = account.id
    WHERE account.id = seats_agent_check.account_id;
END
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
