-- PUT then DELETE /v1/accounts/{a}/conversations/agents/{u}, one request per script run:
-- :phase alternates (pgbench keeps a client's variables between runs). Captured from the
-- service (see README.md). Each client owns the accounts a = 1 + client_id (mod nclients),
-- as each wrk thread does, so two clients never assign the same user.
-- Each request: the plan's lock with the caller's role, then one statement that writes the
-- assignment (or deletes it), the plan's counter, the event and its webhook deliveries.
-- The bench has no webhook endpoints: the delivery body (the last parameter) is bound to the
-- event's data, a value of the same kind that no row receives.
\if :phase = 0
\set a 1 + :client_id + :nclients * random(0, (:naccounts - 1 - :client_id) / :nclients)
\set u random(:first_free, :users)
\set evt random(1, 1000000000000000)
BEGIN;
SELECT plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.pending_seats, plan.period_start, plan.period_end, plan.billing_cycle, caller.role FROM plan LEFT OUTER JOIN account_user AS caller ON caller.account_id = plan.account_id AND caller.id = :admin::VARCHAR WHERE plan.account_id = :a::VARCHAR FOR UPDATE OF plan;
WITH target AS (SELECT account_user.id AS user_id, assignment.assigned_at AS assigned_at, assignment.assigned_by AS assigned_by FROM account_user LEFT OUTER JOIN assignment ON assignment.account_id = account_user.account_id AND assignment.user_id = account_user.id WHERE account_user.account_id = :a::VARCHAR AND account_user.id = :u::VARCHAR), taken AS (INSERT INTO assignment (account_id, user_id, assigned_at, assigned_by) SELECT :a::VARCHAR AS anon_1, target.user_id AS user_id, :now::TIMESTAMP WITH TIME ZONE AS anon_2, :actor::VARCHAR AS anon_3 FROM target WHERE target.assigned_at IS NULL RETURNING assignment.user_id), counted AS (UPDATE plan SET assigned=(plan.assigned + 1), updated_at=:now::TIMESTAMP WITH TIME ZONE WHERE plan.account_id = :a::VARCHAR AND (EXISTS (SELECT taken.user_id FROM taken)) RETURNING plan.assigned), written_event AS (INSERT INTO event (id, account_id, type, actor, at, data) SELECT :evt::VARCHAR AS anon_4, :a::VARCHAR AS anon_1, :assigned_type::VARCHAR AS anon_5, :actor::VARCHAR AS anon_3, :now::TIMESTAMP WITH TIME ZONE AS anon_2, :assigned_data::JSON AS anon_6 FROM taken RETURNING event.id, event.type, event.at), queued AS (INSERT INTO webhook_delivery (endpoint_id, event_id, event_type, body, status, attempts, next_attempt_at, created_at) SELECT webhook_endpoint.id AS id, written_event.id AS id_1, written_event.type AS type, :assigned_data::VARCHAR AS anon_7, 'pending', 0, written_event.at AS at, written_event.at AS at__1 FROM written_event JOIN webhook_endpoint ON webhook_endpoint.disabled IS false AND (webhook_endpoint.event_types IS NULL OR json_typeof(webhook_endpoint.event_types) = 'null' OR (CAST(webhook_endpoint.event_types AS JSONB) ? written_event.type))) SELECT target.user_id, target.assigned_at, target.assigned_by, EXISTS (SELECT taken.user_id FROM taken) AS taken FROM target;
COMMIT;
\set phase 1
\else
\set evt random(1, 1000000000000000)
BEGIN;
SELECT plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.pending_seats, plan.period_start, plan.period_end, plan.billing_cycle, caller.role FROM plan LEFT OUTER JOIN account_user AS caller ON caller.account_id = plan.account_id AND caller.id = :admin::VARCHAR WHERE plan.account_id = :a::VARCHAR FOR UPDATE OF plan;
WITH released AS (DELETE FROM assignment WHERE assignment.account_id = :a::VARCHAR AND assignment.user_id = :u::VARCHAR RETURNING assignment.user_id), counted AS (UPDATE plan SET assigned=(plan.assigned - 1), updated_at=:now::TIMESTAMP WITH TIME ZONE WHERE plan.account_id = :a::VARCHAR AND (EXISTS (SELECT released.user_id FROM released)) RETURNING plan.assigned), written_event AS (INSERT INTO event (id, account_id, type, actor, at, data) SELECT :evt::VARCHAR AS anon_1, :a::VARCHAR AS anon_2, :unassigned_type::VARCHAR AS anon_3, :actor::VARCHAR AS anon_4, :now::TIMESTAMP WITH TIME ZONE AS anon_5, :unassigned_data::JSON AS anon_6 FROM released RETURNING event.id, event.type, event.at), queued AS (INSERT INTO webhook_delivery (endpoint_id, event_id, event_type, body, status, attempts, next_attempt_at, created_at) SELECT webhook_endpoint.id AS id, written_event.id AS id_1, written_event.type AS type, :unassigned_data::VARCHAR AS anon_7, 'pending', 0, written_event.at AS at, written_event.at AS at__1 FROM written_event JOIN webhook_endpoint ON webhook_endpoint.disabled IS false AND (webhook_endpoint.event_types IS NULL OR json_typeof(webhook_endpoint.event_types) = 'null' OR (CAST(webhook_endpoint.event_types AS JSONB) ? written_event.type))) SELECT EXISTS (SELECT released.user_id FROM released) AS released;
COMMIT;
\set phase 0
\endif
