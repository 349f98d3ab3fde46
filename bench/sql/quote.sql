-- POST /v1/accounts/{a}/conversations/quotes (no Idempotency-Key): the caller's role in a
-- transaction of its own, then the plan, the account and the stored quote. Captured from the
-- service (see README.md).
\set a random(1, :naccounts)
\set seats random(21, 40)
\set quo random(1, 1000000000000000)
BEGIN;
SELECT account_user.role FROM account_user WHERE account_user.account_id = :a::VARCHAR AND account_user.id = :admin::VARCHAR;
COMMIT;
BEGIN;
SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.period_start, plan.period_end, plan.pending_invoice_id, plan.pending_seats, plan.created_at, plan.updated_at FROM plan WHERE plan.account_id = :a::VARCHAR;
SELECT account.id, account.name, account.billing_cycle, account.billing_anchor, account.payment_method, account.currency, account.created_at, account.updated_at FROM account WHERE account.id = :a::VARCHAR;
INSERT INTO quote (id, account_id, current_seats, seats, unit_price, currency, billing_cycle, period_start, period_end, due_now, created_by, created_at, expires_at) VALUES (:quo::VARCHAR, :a::VARCHAR, :plan_seats::BIGINT, :seats::BIGINT, :price::BIGINT, :currency::VARCHAR, :cycle::VARCHAR, :period_start::DATE, :period_end::DATE, :due_now::BIGINT, :actor::VARCHAR, :now::TIMESTAMP WITH TIME ZONE, :expires::TIMESTAMP WITH TIME ZONE);
COMMIT;
