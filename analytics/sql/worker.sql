-- What the worker reads back while it runs: stored requests, stored item outcomes (to
-- recognise a batch already sunk), stored item batches, and the code inventory it reserves from.

-- name: request
SELECT request_json FROM operation_requests FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}

-- name: stored_items
SELECT item_index, status, result_data, error_code, error_message, error_category,
       is_retryable, retry_count, processing_duration_ms, cost, attempts, processed_at, channel,
       item_id
FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index >= {start:UInt32} AND item_index < {stop:UInt32}
ORDER BY item_index

-- name: item_batches
SELECT batch_index, batch_json FROM item_batches FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND batch_index IN {indexes:Array(UInt32)}
ORDER BY batch_index

-- name: available_codes
-- A code is available when it has not expired and its latest reservation row (if any) is
-- "released". Oldest expiry first, so codes that would lapse soonest are handed out first.
SELECT code FROM codes FINAL
WHERE sponsor_id = {sponsor:UInt64} AND subscription_tier_id = {tier:UInt32}
  AND expires_at > now64(3)
  AND code NOT IN (
    SELECT code FROM code_reservations FINAL
    WHERE sponsor_id = {sponsor:UInt64} AND state != 'released'
  )
ORDER BY expires_at, operation_id, item_index
LIMIT {limit:UInt32}

-- name: reserved_for
SELECT item_index, code FROM code_reservations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index IN {indexes:Array(UInt32)} AND state != 'released'
ORDER BY item_index, code
