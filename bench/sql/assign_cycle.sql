-- PUT then DELETE /v1/accounts/{a}/conversations/agents/{u}, one request per script run:
-- :phase alternates (pgbench keeps a client's variables between runs). Captured from the
-- service (see README.md). Each client owns the accounts a = 1 + client_id (mod nclients),
-- as each wrk thread does, so two clients never assign the same user.
\if :phase = 0
\set a 1 + :client_id + :nclients * random(0, (:naccounts - 1 - :client_id) / :nclients)
\set u random(:first_free, :users)
\set evt random(1, 1000000000000000)
BEGIN;
SELECT account_user.role FROM account_user WHERE account_user.account_id = :a::VARCHAR AND account_user.id = :admin::VARCHAR;
SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.period_start, plan.period_end, plan.pending_invoice_id, plan.pending_seats, plan.version, plan.created_at, plan.updated_at FROM plan WHERE plan.account_id = :a::VARCHAR FOR UPDATE;
SELECT account_user.id, assignment.account_id, assignment.user_id, assignment.assigned_at, assignment.assigned_by FROM account_user LEFT OUTER JOIN assignment ON assignment.account_id = account_user.account_id AND assignment.user_id = account_user.id WHERE account_user.account_id = :a::VARCHAR AND account_user.id = :u::VARCHAR;
INSERT INTO event (id, account_id, type, actor, at, data) VALUES (:evt::VARCHAR, :a::VARCHAR, :assigned_type::VARCHAR, :actor::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :assigned_data::JSON);
INSERT INTO assignment (account_id, user_id, assigned_at, assigned_by) VALUES (:a::VARCHAR, :u::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :actor::VARCHAR);
UPDATE plan SET assigned=:agents_after_put::BIGINT, version=:version::INTEGER, updated_at=:now::TIMESTAMP WITH TIME ZONE WHERE plan.account_id = :a::VARCHAR;
COMMIT;
\set phase 1
\else
\set evt random(1, 1000000000000000)
BEGIN;
SELECT account_user.role FROM account_user WHERE account_user.account_id = :a::VARCHAR AND account_user.id = :admin::VARCHAR;
SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.period_start, plan.period_end, plan.pending_invoice_id, plan.pending_seats, plan.version, plan.created_at, plan.updated_at FROM plan WHERE plan.account_id = :a::VARCHAR FOR UPDATE;
DELETE FROM assignment WHERE assignment.account_id = :a::VARCHAR AND assignment.user_id = :u::VARCHAR;
INSERT INTO event (id, account_id, type, actor, at, data) VALUES (:evt::VARCHAR, :a::VARCHAR, :unassigned_type::VARCHAR, :actor::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :unassigned_data::JSON);
UPDATE plan SET assigned=:agents::BIGINT, version=:version::INTEGER, updated_at=:now::TIMESTAMP WITH TIME ZONE WHERE plan.account_id = :a::VARCHAR;
COMMIT;
\set phase 0
\endif
