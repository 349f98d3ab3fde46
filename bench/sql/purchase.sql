-- POST /v1/accounts/{a}/conversations/purchases with a new Idempotency-Key, sandbox gateway,
-- card accepted. Captured from the service (see README.md): the caller's role and the key's
-- claim, each one statement in autocommit; the pending invoice and its first attempt
-- committed together with the plan locked (with its account, read once); after the charge,
-- the collection engine's record (the plan locked, the invoice and its attempts read under
-- that lock, the outcome, the invoice paid, the seats raised, the event); then the answer's
-- reads and the stored response, in autocommit. 21 statements. Each client owns the accounts
-- a = 1 + client_id (mod nclients), as each wrk thread does.
\set a 1 + :client_id + :nclients * random(0, (:naccounts - 1 - :client_id) / :nclients)
\set key random(1, 1000000000000000)
\set inv random(1, 1000000000000000)
\set chg random(1, 1000000000000000)
\set evt random(1, 1000000000000000)
\set seats random(21, 1000)
\set one 1
SELECT account_user.role FROM account_user WHERE account_user.account_id = :a::VARCHAR AND account_user.id = :primary::VARCHAR;
INSERT INTO idempotency_key (account_id, caller, key, fingerprint, state, locked_at, created_at) VALUES (:a::VARCHAR, :primary_actor::VARCHAR, :key::VARCHAR, :fingerprint::VARCHAR, :running::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :now::TIMESTAMP WITH TIME ZONE) ON CONFLICT DO NOTHING RETURNING idempotency_key.key;
BEGIN;
SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.period_start, plan.period_end, plan.billing_cycle, plan.pending_invoice_id, plan.pending_seats, plan.created_at, plan.updated_at, account.id, account.name, account.billing_cycle AS billing_cycle_1, account.billing_anchor, account.payment_method, account.currency, account.created_at AS created_at_1, account.updated_at AS updated_at_1 FROM plan JOIN account ON account.id = plan.account_id WHERE plan.account_id = :a::VARCHAR FOR UPDATE OF plan FOR KEY SHARE OF account;
INSERT INTO invoice (id, account_id, kind, status, currency, total, seats, period_start, period_end, payment_method, request_key, request_fingerprint, billing_cycle, created_by, created_at) VALUES (:inv::VARCHAR, :a::VARCHAR, :purchase_kind::VARCHAR, :pending::VARCHAR, :currency::VARCHAR, :due_now::BIGINT, :seats::BIGINT, :period_start::DATE, :period_end::DATE, :payment_method::VARCHAR, :key::VARCHAR, :fingerprint::VARCHAR, :cycle::VARCHAR, :primary_actor::VARCHAR, :now::TIMESTAMP WITH TIME ZONE) ON CONFLICT (request_key) DO NOTHING RETURNING invoice.id;
INSERT INTO invoice_line (invoice_id, position, description, quantity, unit_price, amount, period_start, period_end) VALUES (:inv::VARCHAR, :zero::INTEGER, :line::VARCHAR, :seats::BIGINT, :price::BIGINT, :due_now::BIGINT, :period_start::DATE, :period_end::DATE);
UPDATE plan SET pending_invoice_id=:inv::VARCHAR, pending_seats=:seats::BIGINT, updated_at=:now::TIMESTAMP WITH TIME ZONE WHERE plan.account_id = :a::VARCHAR;
INSERT INTO charge_attempt (invoice_id, number, operation, gateway_key, payment_method, amount, currency, created_by, at, sent_at) VALUES (:inv::VARCHAR, :one::INTEGER, :charge_op::VARCHAR, :inv::VARCHAR, :payment_method::VARCHAR, :due_now::BIGINT, :currency::VARCHAR, :primary_actor::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :now::TIMESTAMP WITH TIME ZONE);
COMMIT;
BEGIN;
SELECT invoice.id, plan.account_id, plan.status, plan.seats, plan.pending_invoice_id FROM invoice JOIN plan ON plan.account_id = invoice.account_id WHERE invoice.id IN (:inv::VARCHAR) ORDER BY plan.account_id FOR UPDATE OF plan;
SELECT invoice.id, invoice.account_id, invoice.kind, invoice.status, invoice.total, invoice.currency, invoice.seats, invoice.period_start, invoice.period_end, invoice.billing_cycle, invoice.payment_method, account.payment_method AS payment_method_1, invoice.failure_reason, invoice.created_at, invoice.paid_at, invoice.charge_id, charge_attempt.number, charge_attempt.operation, charge_attempt.gateway_key, charge_attempt.payment_method AS payment_method_2, charge_attempt.at, charge_attempt.sent_at, charge_outcome.outcome FROM invoice JOIN account ON account.id = invoice.account_id LEFT OUTER JOIN charge_attempt ON charge_attempt.invoice_id = invoice.id LEFT OUTER JOIN charge_outcome ON charge_outcome.invoice_id = charge_attempt.invoice_id AND charge_outcome.number = charge_attempt.number WHERE invoice.id IN (:inv::VARCHAR) ORDER BY invoice.id, charge_attempt.number;
INSERT INTO charge_outcome (invoice_id, number, outcome, reason, charge_id, at) VALUES (:inv::VARCHAR, :one::INTEGER, :succeeded::VARCHAR, NULL::VARCHAR, :chg::VARCHAR, :now::TIMESTAMP WITH TIME ZONE);
UPDATE invoice SET status=:paid::VARCHAR, paid_at=:now::TIMESTAMP WITH TIME ZONE, charge_id=:chg::VARCHAR WHERE invoice.id = :inv::VARCHAR AND invoice.status = :pending::VARCHAR;
UPDATE plan SET seats=:seats::BIGINT, pending_invoice_id=NULL::VARCHAR, pending_seats=NULL::BIGINT, updated_at=:now::TIMESTAMP WITH TIME ZONE WHERE plan.account_id = :a::VARCHAR;
INSERT INTO event (id, account_id, type, actor, at, data) VALUES (:evt::VARCHAR, :a::VARCHAR, :purchased_type::VARCHAR, :primary_actor::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :purchased_data::JSON);
SELECT webhook_endpoint.id, webhook_endpoint.event_types FROM webhook_endpoint WHERE webhook_endpoint.disabled IS false;
COMMIT;
SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.period_start, plan.period_end, plan.billing_cycle, plan.pending_invoice_id, plan.pending_seats, plan.created_at, plan.updated_at, account.id, account.name, account.billing_cycle AS billing_cycle_1, account.billing_anchor, account.payment_method, account.currency, account.created_at AS created_at_1, account.updated_at AS updated_at_1 FROM plan JOIN account ON account.id = plan.account_id WHERE plan.account_id = :a::VARCHAR;
SELECT invoice.id, invoice.total, coalesce((SELECT charge_outcome.reason FROM charge_outcome WHERE charge_outcome.invoice_id = invoice.id AND charge_outcome.outcome = :declined::VARCHAR ORDER BY charge_outcome.number DESC LIMIT :one::INTEGER), invoice.failure_reason) AS coalesce_1, invoice.created_at, (SELECT min(charge_outcome.at) AS min_1 FROM charge_outcome WHERE charge_outcome.invoice_id = invoice.id AND charge_outcome.outcome = :declined::VARCHAR) AS anon_1 FROM invoice WHERE invoice.account_id = :a::VARCHAR AND invoice.kind = :renewal_kind::VARCHAR AND invoice.status = :pending::VARCHAR ORDER BY invoice.created_at, invoice.id LIMIT :one::INTEGER;
UPDATE idempotency_key SET state=:done::VARCHAR, response_status=:created::INTEGER, response_body=:response::JSON WHERE idempotency_key.account_id = :a::VARCHAR AND idempotency_key.caller = :primary_actor::VARCHAR AND idempotency_key.key = :key::VARCHAR;
