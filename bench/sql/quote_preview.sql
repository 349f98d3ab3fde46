-- GET /v1/accounts/{a}/conversations/quote-preview?seats=N: the caller's role and the plan with
-- its account, each one statement in autocommit (no transaction). Captured from the service
-- (tests/purchases/test_statements.py lists them; make bench does not re-check this one).
\set a random(1, :naccounts)
SELECT account_user.role FROM account_user WHERE account_user.account_id = :a::VARCHAR AND account_user.id = :admin::VARCHAR;
SELECT plan.account_id, plan.status, plan.seats, plan.assigned, plan.trial_started_at, plan.trial_ends_at, plan.period_start, plan.period_end, plan.billing_cycle, plan.pending_invoice_id, plan.pending_seats, plan.created_at, plan.updated_at, account.id, account.name, account.billing_cycle AS billing_cycle_1, account.billing_anchor, account.payment_method, account.currency, account.created_at AS created_at_1, account.updated_at AS updated_at_1 FROM plan JOIN account ON account.id = plan.account_id WHERE plan.account_id = :a::VARCHAR;
