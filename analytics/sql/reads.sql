-- What the API (and analysts' tools) read: history, items, aggregates, codes, statistics,
-- retries, the code inventory and dealer reports. Parameters are bound by the client
-- ({name:Type}); nothing here is ever built from user strings.

-- name: ping
-- Readiness: ClickHouse answers.
SELECT 1

-- name: history
SELECT operation_id, operation_name, operation_type, status, total_items, processed_items,
       successful_items, failed_items, skipped_items, created_at, started_at, completed_at,
       requested_by, subscription_tier_id, code_prefix, channel, total_cost, sponsor_id
FROM operations FINAL
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
  AND ({status:Nullable(String)} IS NULL OR status = {status:Nullable(String)})
  AND ({kind:Nullable(String)} IS NULL OR operation_type = {kind:Nullable(String)})
  AND ({search:Nullable(String)} IS NULL
       OR positionCaseInsensitiveUTF8(operation_name, assumeNotNull({search:Nullable(String)})) > 0)
ORDER BY created_at DESC, operation_id DESC
LIMIT {limit:UInt32} OFFSET {offset:UInt64}

-- name: history_count
SELECT count() FROM operations FINAL
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
  AND ({status:Nullable(String)} IS NULL OR status = {status:Nullable(String)})
  AND ({kind:Nullable(String)} IS NULL OR operation_type = {kind:Nullable(String)})
  AND ({search:Nullable(String)} IS NULL
       OR positionCaseInsensitiveUTF8(operation_name, assumeNotNull({search:Nullable(String)})) > 0)

-- name: job_operations
-- A sponsor's job operations of the types starting with {prefix} (the ticket API's list).
SELECT operation_id, status, job_type, total_items, successful_items, failed_items,
       created_at, completed_at
FROM operations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND startsWith(ifNull(job_type, ''), {prefix:String})
  AND (empty({statuses:Array(String)}) OR has({statuses:Array(String)}, status))
ORDER BY created_at DESC, operation_id DESC
LIMIT {limit:UInt32} OFFSET {offset:UInt64}

-- name: job_operations_count
SELECT count() FROM operations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND startsWith(ifNull(job_type, ''), {prefix:String})
  AND (empty({statuses:Array(String)}) OR has({statuses:Array(String)}, status))

-- name: items_page
SELECT item_index, item_id, status, result_data, error_code, error_message, error_category,
       is_retryable, retry_count, processed_at, processing_duration_ms, channel, cost, attempts
FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index >= {after:UInt32}
  AND ({status:Nullable(String)} IS NULL OR status = {status:Nullable(String)})
ORDER BY item_index
LIMIT {limit:UInt32}

-- name: agg_status
SELECT status, count() FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
GROUP BY status ORDER BY status

-- name: agg_errors
SELECT error_code, error_category, count(), countIf(is_retryable) FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND error_code IS NOT NULL
GROUP BY error_code, error_category ORDER BY count() DESC, error_code LIMIT 100

-- name: agg_totals
SELECT count(), sum(cost), sum(attempts), avg(processing_duration_ms),
       quantile(0.5)(processing_duration_ms), quantile(0.95)(processing_duration_ms),
       max(processing_duration_ms), min(processed_at), max(processed_at)
FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}

-- name: codes_page
SELECT item_index, code, subscription_tier_id, batch_name, expires_at
FROM codes FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index >= {after:UInt32}
ORDER BY item_index
LIMIT {limit:UInt32}

-- name: code_counts
SELECT uniqExact(item_index), uniqExact(code), count()
FROM codes
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}

-- name: item_counts
SELECT status, count() FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
GROUP BY status

-- name: last_success
SELECT max(processed_at) FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String} AND status = 'Success'

-- name: known_codes
SELECT DISTINCT code FROM codes
WHERE sponsor_id = {sponsor:UInt64} AND code IN {codes:Array(String)}

-- name: stat_totals
-- The statistics read the rollups (schema.sql: statistics_daily, statistics_hourly).
SELECT sum(operations), sumIf(operations, status = 'Completed'),
       sumIf(operations, status = 'Failed'), sumIf(operations, status = 'Cancelled'),
       sumIf(operations, status = 'PartiallyCompleted'),
       sum(processed_items), sum(successful_items),
       if(sum(timed_operations) > 0, sum(duration_ms) / sum(timed_operations), 0),
       sum(total_cost)
FROM statistics_daily
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})

-- name: stat_recent
SELECT sum(operations), sumIf(successful_items, operation_type = 'BulkLinkSend'),
       sumIf(successful_items, operation_type = 'BulkCodeGeneration'),
       sum(processed_items), sum(successful_items)
FROM statistics_daily
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
  AND day >= toDate({since:DateTime64(3, 'UTC')})

-- name: stat_days
SELECT day, sum(operations), sum(processed_items), sum(successful_items)
FROM statistics_daily
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
  AND day >= toDate({since:DateTime64(3, 'UTC')})
GROUP BY day ORDER BY day

-- name: stat_channels
SELECT channel, sum(processed_items), sum(successful_items), sum(total_cost)
FROM statistics_daily
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
  AND channel != ''
GROUP BY channel ORDER BY channel

-- name: stat_hours
SELECT toHour(hour, {tz:String}) AS hour_of_day, sum(operations), sum(processed_items),
       sum(successful_items)
FROM statistics_hourly
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
GROUP BY hour_of_day ORDER BY sum(operations) DESC, hour_of_day LIMIT 5

-- name: stat_as_of
-- When the older of the two rollups was last recomputed.
SELECT min(last_success_time) FROM system.view_refreshes
WHERE database = currentDatabase() AND view IN ('statistics_daily', 'statistics_hourly')

-- name: failed
SELECT item_index, is_retryable FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String} AND status = 'Failed'
  AND ({code:Nullable(String)} IS NULL OR error_code = {code:Nullable(String)})
  AND ({category:Nullable(String)} IS NULL OR error_category = {category:Nullable(String)})
ORDER BY item_index

-- name: recipients
SELECT item_index, name, address, message, idempotency_key, dealer_json FROM recipients FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index IN {indexes:Array(UInt32)}
ORDER BY item_index

-- name: inventory
SELECT c.subscription_tier_id AS tier,
       countIf(c.expires_at > now64(3) AND r.state IN ('', 'released')) AS available,
       countIf(r.state = 'reserved') AS reserved,
       countIf(r.state = 'transferred') AS transferred,
       countIf(c.expires_at <= now64(3) AND r.state IN ('', 'released')) AS expired
FROM (SELECT code, subscription_tier_id, expires_at FROM codes FINAL
      WHERE sponsor_id = {sponsor:UInt64}) AS c
LEFT JOIN (SELECT code, state FROM code_reservations FINAL
           WHERE sponsor_id = {sponsor:UInt64}) AS r ON c.code = r.code
GROUP BY tier
ORDER BY tier
SETTINGS join_use_nulls = 0

-- name: existing_dealers
SELECT DISTINCT email FROM dealer_invitations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND status = 'Success' AND email IN {emails:Array(String)}

-- name: dealer_report
SELECT row_number, email, phone, dealer_name, tier, codes, token, status,
       error_code, error_message, processed_at
FROM dealer_invitations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
ORDER BY row_number

-- name: dealer_errors
SELECT row_number, email, coalesce(error_message, error_code, status), processed_at
FROM dealer_invitations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String} AND status != 'Success'
ORDER BY row_number
LIMIT {limit:UInt32}

-- name: duplicate_codes
SELECT count() FROM (SELECT code FROM codes FINAL GROUP BY code HAVING count() > 1)

-- name: invitation_type
-- A dealer job's invitation type, from the dealers the worker stored when the upload's
-- recipients arrived (every dealer of one job has the same).
SELECT JSONExtractString(dealer_json, 'invitationType') FROM recipients FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String} AND dealer_json != ''
LIMIT 1

-- name: refresh_statistics_daily
-- Recompute the statistics rollups now (they refresh every 10 seconds by themselves).
SYSTEM REFRESH VIEW statistics_daily

-- name: refresh_statistics_hourly
SYSTEM REFRESH VIEW statistics_hourly

-- name: wait_statistics_daily
SYSTEM WAIT VIEW statistics_daily

-- name: wait_statistics_hourly
SYSTEM WAIT VIEW statistics_hourly

-- name: archived_snapshots
-- The newest version of each; argMax reads only the parts holding these ids (no FINAL).
SELECT operation_id, argMax(snapshot_json, version) FROM operation_snapshots
WHERE operation_id IN {operation_ids:Array(String)}
GROUP BY operation_id
