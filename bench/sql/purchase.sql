-- POST /v1/accounts/{a}/conversations/purchases with a new Idempotency-Key, sandbox gateway,
-- card accepted: the caller's role; the key claimed and committed; the pending invoice
-- committed; then (after the charge) the invoice paid, the seats raised, the event, the
-- stored response. Captured from the service (see README.md). Each client owns the accounts
-- a = 1 + client_id (mod nclients), as each wrk thread does.
\set a 1 + :client_id + :nclients * random(0, (:naccounts - 1 - :client_id) / :nclients)
\set key random(1, 1000000000000000)
\set inv random(1, 1000000000000000)
\set chg random(1, 1000000000000000)
\set evt random(1, 1000000000000000)
\set seats random(21, 1000)
BEGIN;
SELECT account_user.role FROM account_user WHERE account_user.account_id = :a::VARCHAR AND account_user.id = :primary::VARCHAR;
COMMIT;
BEGIN;
SELECT idempotency_key.account_id, idempotency_key.caller, idempotency_key.key, idempotency_key.fingerprint, idempotency_key.state, idempotency_key.locked_at, idempotency_key.created_at, idempotency_key.response_status, idempotency_key.response_body FROM idempotency_key WHERE idempotency_key.account_id = :a::VARCHAR AND idempotency_key.caller = :primary_actor::VARCHAR AND idempotency_key.key = :key::VARCHAR FOR UPDATE;
INSERT INTO idempotency_key (account_id, caller, key, fingerprint, state, locked_at, created_at, response_status) VALUES (:a::VARCHAR, :primary_actor::VARCHAR, :key::VARCHAR, :fingerprint::VARCHAR, :running::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :now::TIMESTAMP WITH TIME ZONE, NULL::INTEGER);
COMMIT;
BEGIN;
SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.period_start, plan.period_end, plan.pending_invoice_id, plan.pending_seats, plan.created_at, plan.updated_at FROM plan WHERE plan.account_id = :a::VARCHAR FOR UPDATE;
SELECT account.id, account.name, account.billing_cycle, account.billing_anchor, account.payment_method, account.currency, account.created_at, account.updated_at FROM account WHERE account.id = :a::VARCHAR;
SELECT invoice.id, invoice.account_id, invoice.kind, invoice.status, invoice.currency, invoice.total, invoice.seats, invoice.period_start, invoice.period_end, invoice.payment_method, invoice.request_key, invoice.created_by, invoice.created_at, invoice.paid_at, invoice.charge_id, invoice.failure_reason FROM invoice WHERE invoice.request_key = :key::VARCHAR;
INSERT INTO invoice (id, account_id, kind, status, currency, total, seats, period_start, period_end, payment_method, request_key, created_by, created_at, paid_at, charge_id, failure_reason) VALUES (:inv::VARCHAR, :a::VARCHAR, :purchase_kind::VARCHAR, :pending::VARCHAR, :currency::VARCHAR, :due_now::BIGINT, :seats::BIGINT, :period_start::DATE, :period_end::DATE, :payment_method::VARCHAR, :key::VARCHAR, :primary_actor::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, NULL::TIMESTAMP WITH TIME ZONE, NULL::VARCHAR, NULL::VARCHAR);
UPDATE plan SET pending_invoice_id=:inv::VARCHAR, pending_seats=:seats::BIGINT, updated_at=:now::TIMESTAMP WITH TIME ZONE WHERE plan.account_id = :a::VARCHAR;
INSERT INTO invoice_line (invoice_id, position, description, quantity, unit_price, amount, period_start, period_end) VALUES (:inv::VARCHAR, :zero::INTEGER, :line::VARCHAR, :seats::BIGINT, :price::BIGINT, :due_now::BIGINT, :period_start::DATE, :period_end::DATE);
COMMIT;
BEGIN;
SELECT invoice.id, invoice.account_id, invoice.kind, invoice.status, invoice.currency, invoice.total, invoice.seats, invoice.period_start, invoice.period_end, invoice.payment_method, invoice.request_key, invoice.created_by, invoice.created_at, invoice.paid_at, invoice.charge_id, invoice.failure_reason FROM invoice WHERE invoice.id = :inv::VARCHAR;
SELECT invoice_line.invoice_id, invoice_line.position, invoice_line.description, invoice_line.quantity, invoice_line.unit_price, invoice_line.amount, invoice_line.period_start, invoice_line.period_end FROM invoice_line WHERE invoice_line.invoice_id IN (:inv::VARCHAR) ORDER BY invoice_line.position;
SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.period_start, plan.period_end, plan.pending_invoice_id, plan.pending_seats, plan.created_at, plan.updated_at FROM plan WHERE plan.account_id = :a::VARCHAR FOR UPDATE;
SELECT account.id, account.name, account.billing_cycle, account.billing_anchor, account.payment_method, account.currency, account.created_at, account.updated_at FROM account WHERE account.id = :a::VARCHAR;
SELECT invoice.id, invoice.account_id, invoice.kind, invoice.status, invoice.currency, invoice.total, invoice.seats, invoice.period_start, invoice.period_end, invoice.payment_method, invoice.request_key, invoice.created_by, invoice.created_at, invoice.paid_at, invoice.charge_id, invoice.failure_reason FROM invoice WHERE invoice.id = :inv::VARCHAR;
SELECT invoice_line.invoice_id, invoice_line.position, invoice_line.description, invoice_line.quantity, invoice_line.unit_price, invoice_line.amount, invoice_line.period_start, invoice_line.period_end FROM invoice_line WHERE :inv::VARCHAR = invoice_line.invoice_id ORDER BY invoice_line.position;
INSERT INTO event (id, account_id, type, actor, at, data) VALUES (:evt::VARCHAR, :a::VARCHAR, :purchased_type::VARCHAR, :primary_actor::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :purchased_data::JSON);
UPDATE invoice SET status=:paid::VARCHAR, paid_at=:now::TIMESTAMP WITH TIME ZONE, charge_id=:chg::VARCHAR WHERE invoice.id = :inv::VARCHAR;
UPDATE plan SET seats=:seats::BIGINT, pending_invoice_id=NULL::VARCHAR, pending_seats=NULL::BIGINT, updated_at=:now::TIMESTAMP WITH TIME ZONE WHERE plan.account_id = :a::VARCHAR;
SELECT account.id, account.name, account.billing_cycle, account.billing_anchor, account.payment_method, account.currency, account.created_at, account.updated_at FROM account WHERE account.id = :a::VARCHAR;
SELECT invoice.id, invoice.account_id, invoice.kind, invoice.status, invoice.currency, invoice.total, invoice.seats, invoice.period_start, invoice.period_end, invoice.payment_method, invoice.request_key, invoice.created_by, invoice.created_at, invoice.paid_at, invoice.charge_id, invoice.failure_reason FROM invoice WHERE invoice.id = :inv::VARCHAR;
SELECT invoice_line.invoice_id, invoice_line.position, invoice_line.description, invoice_line.quantity, invoice_line.unit_price, invoice_line.amount, invoice_line.period_start, invoice_line.period_end FROM invoice_line WHERE invoice_line.invoice_id IN (:inv::VARCHAR) ORDER BY invoice_line.position;
SELECT idempotency_key.account_id, idempotency_key.caller, idempotency_key.key, idempotency_key.fingerprint, idempotency_key.state, idempotency_key.locked_at, idempotency_key.created_at, idempotency_key.response_status, idempotency_key.response_body FROM idempotency_key WHERE idempotency_key.account_id = :a::VARCHAR AND idempotency_key.caller = :primary_actor::VARCHAR AND idempotency_key.key = :key::VARCHAR FOR UPDATE;
UPDATE idempotency_key SET state=:done::VARCHAR, response_status=:created::INTEGER, response_body=:response::JSON WHERE idempotency_key.account_id = :a::VARCHAR AND idempotency_key.caller = :primary_actor::VARCHAR AND idempotency_key.key = :key::VARCHAR;
COMMIT;
