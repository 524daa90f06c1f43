-- How long each table keeps its rows: one TTL per table, in days bound from the settings
-- (BULKOPS_RETENTION_RESULTS_DAYS, BULKOPS_RETENTION_PERSONAL_DAYS), set on start when it
-- differs (analytics/retention.py). ClickHouse deletes expired rows in background merges.
-- `templates` (a sponsor's configuration) and `idempotency_keys` (its own 1-day TTL in
-- schema.sql) are not here; the statistics rollups are recomputed from `operations`.

-- name: operations
ALTER TABLE operations MODIFY TTL toDateTime(created_at) + toIntervalDay({days:UInt32})

-- name: operation_requests
ALTER TABLE operation_requests MODIFY TTL toDateTime(requested_at) + toIntervalDay({days:UInt32})

-- name: operation_snapshots
ALTER TABLE operation_snapshots MODIFY TTL toDateTime(finished_at) + toIntervalDay({days:UInt32})

-- name: items
ALTER TABLE items MODIFY TTL toDateTime(processed_at) + toIntervalDay({days:UInt32})

-- name: codes
-- A code is kept for the retention period after it expires.
ALTER TABLE codes MODIFY TTL toDateTime(expires_at) + toIntervalDay({days:UInt32})

-- name: code_reservations
-- A code's ledger lives as long as the code can: codes are valid for up to 3,650 days.
ALTER TABLE code_reservations
    MODIFY TTL toDateTime(updated_at) + toIntervalDay({days:UInt32} + 3650)

-- name: recipients
ALTER TABLE recipients MODIFY TTL stored_at + toIntervalDay({days:UInt32})

-- name: dealer_invitations
ALTER TABLE dealer_invitations MODIFY TTL toDateTime(processed_at) + toIntervalDay({days:UInt32})

-- name: item_batches
-- A link send's batches carry its recipients: personal data, but also what a paused or
-- scheduled send resumes from, so kept at least 60 days.
ALTER TABLE item_batches MODIFY TTL toDateTime(stored_at) + toIntervalDay({days:UInt32})

-- name: ttl_days
-- The days a table's TTL keeps now (NULL: no TTL yet), read back from its definition.
SELECT toUInt32OrNull(extract(engine_full, 'toIntervalDay\\(_CAST\\((\\d+)'))
FROM system.tables
WHERE database = currentDatabase() AND name = {table:String}
