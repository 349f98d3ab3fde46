-- POST /v1/accounts/{a}/conversations/quotes (no Idempotency-Key): the caller's role, one
-- statement in autocommit; then, in one transaction, the plan with its account (one read),
-- the stored quote and the trim of the account's old quotes. Captured from the service (see
-- README.md).
\set a random(1, :naccounts)
\set seats random(21, 40)
\set quo random(1, 1000000000000000)
\set keep 100
SELECT account_user.role FROM account_user WHERE account_user.account_id = :a::VARCHAR AND account_user.id = :admin::VARCHAR;
BEGIN;
SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.period_start, plan.period_end, plan.billing_cycle, plan.pending_invoice_id, plan.pending_seats, plan.created_at, plan.updated_at, account.id, account.name, account.billing_cycle AS billing_cycle_1, account.billing_anchor, account.payment_method, account.currency, account.created_at AS created_at_1, account.updated_at AS updated_at_1 FROM plan JOIN account ON account.id = plan.account_id WHERE plan.account_id = :a::VARCHAR;
INSERT INTO quote (id, account_id, current_seats, seats, unit_price, currency, billing_cycle, period_start, period_end, due_now, created_by, created_at, expires_at) VALUES (:quo::VARCHAR, :a::VARCHAR, :plan_seats::BIGINT, :seats::BIGINT, :price::BIGINT, :currency::VARCHAR, :cycle::VARCHAR, :period_start::DATE, :period_end::DATE, :due_now::BIGINT, :actor::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :expires::TIMESTAMP WITH TIME ZONE);
DELETE FROM quote WHERE quote.account_id = :a::VARCHAR AND (quote.id NOT IN (SELECT quote.id FROM quote WHERE quote.account_id = :a::VARCHAR ORDER BY quote.created_at DESC, quote.id DESC LIMIT :keep::INTEGER)) RETURNING quote.id;
COMMIT;
