-- Answers remembered for Idempotency-Keys.

-- name: first_answer
-- The first answer given to a key within the last day (two API replicas may both have
-- stored one: the earlier wins).
SELECT
    argMin(request_hash, created_at),
    argMin(status_code, created_at),
    argMin(response, created_at)
FROM idempotency_keys
WHERE sponsor_id = {sponsor:UInt64}
  AND scope = {scope:String}
  AND idempotency_key = {key:String}
  AND created_at > now64(3) - INTERVAL 1 DAY
HAVING count() > 0
