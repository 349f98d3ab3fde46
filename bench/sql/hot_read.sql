-- GET /v1/accounts/{a}/conversations/agents/{u}: the service's one statement, no transaction.
-- Captured from the service (see README.md); :caller asks about :u, both random users of :a.
\set a random(1, :naccounts)
\set caller random(1, :users)
\set u random(1, :users)
SELECT account_user_1.role, account_user_2.id IS NOT NULL AS anon_1, assignment.user_id IS NOT NULL AS anon_2, plan.status, plan.trial_ends_at FROM account LEFT OUTER JOIN account_user AS account_user_1 ON account_user_1.account_id = account.id AND account_user_1.id = :caller::VARCHAR LEFT OUTER JOIN account_user AS account_user_2 ON account_user_2.account_id = account.id AND account_user_2.id = :u::VARCHAR LEFT OUTER JOIN assignment ON assignment.account_id = account.id AND assignment.user_id = :u::VARCHAR LEFT OUTER JOIN plan ON plan.account_id = account.id WHERE account.id = :a::VARCHAR;
