-- The tables, created on start in this order (every statement is idempotent).
-- Every table is a ReplacingMergeTree whose sorting key is the natural identity of a row (the
-- item key (sponsor_id, operation_id, item_index), or the operation), so rows written twice by
-- a replayed batch collapse into one; readers use FINAL or uniqExact where exact counts matter
-- before background merges have run. `version` picks the newest operation row.
-- Monthly partitions only where the partition column never changes for a row's key
-- (operations, requests, archived snapshots): a replayed row in another partition would not
-- collapse in background merges. Expired months then go as whole parts.

-- name: operations
CREATE TABLE IF NOT EXISTS operations
(
    operation_id String,
    sponsor_id UInt64,
    operation_type LowCardinality(String),
    operation_name String,
    status LowCardinality(String),
    total_items UInt64,
    processed_items UInt64,
    successful_items UInt64,
    failed_items UInt64,
    skipped_items UInt64,
    created_at DateTime64(3, 'UTC'),
    started_at Nullable(DateTime64(3, 'UTC')),
    completed_at Nullable(DateTime64(3, 'UTC')),
    requested_by String,
    subscription_tier_id Nullable(UInt32),
    code_prefix Nullable(String),
    channel Nullable(String),
    total_cost Float64 DEFAULT 0,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (sponsor_id, operation_id)

-- name: operation_requests
CREATE TABLE IF NOT EXISTS operation_requests
(
    operation_id String,
    sponsor_id UInt64,
    requested_at DateTime64(3, 'UTC'),
    request_json String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(requested_at)
ORDER BY (sponsor_id, operation_id)

-- name: operation_snapshots
-- The last status snapshot of each finished operation, written when it leaves the worker's
-- tables and the status topic: what the API answers for it from then on.
CREATE TABLE IF NOT EXISTS operation_snapshots
(
    operation_id String,
    sponsor_id UInt64,
    finished_at DateTime64(3, 'UTC'),
    version UInt64,
    snapshot_json String
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(finished_at)
ORDER BY operation_id

-- name: items
CREATE TABLE IF NOT EXISTS items
(
    sponsor_id UInt64,
    operation_id String,
    item_index UInt32,
    item_id String,
    operation_type LowCardinality(String),
    status LowCardinality(String),
    result_data Nullable(String),
    error_code Nullable(String),
    error_message Nullable(String),
    error_category LowCardinality(Nullable(String)),
    is_retryable Bool DEFAULT false,
    retry_count UInt16 DEFAULT 0,
    processed_at DateTime64(3, 'UTC'),
    processing_duration_ms Float64,
    channel LowCardinality(Nullable(String)),
    cost Float64 DEFAULT 0,
    attempts UInt16 DEFAULT 0,
    provider_latency_ms Float64 DEFAULT 0
)
ENGINE = ReplacingMergeTree(processed_at)
ORDER BY (sponsor_id, operation_id, item_index)

-- name: codes
CREATE TABLE IF NOT EXISTS codes
(
    sponsor_id UInt64,
    operation_id String,
    item_index UInt32,
    code String,
    subscription_tier_id UInt32,
    batch_name Nullable(String),
    created_at DateTime64(3, 'UTC'),
    expires_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (sponsor_id, operation_id, item_index)

-- name: templates
CREATE TABLE IF NOT EXISTS templates
(
    sponsor_id UInt64,
    name String,
    channel LowCardinality(String),
    message String,
    batch_size UInt32,
    max_concurrency UInt32,
    retry_attempts UInt32,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (sponsor_id, name)

-- name: recipients
CREATE TABLE IF NOT EXISTS recipients
(
    sponsor_id UInt64,
    operation_id String,
    item_index UInt32,
    name String,
    address String,
    message String,
    idempotency_key String,
    dealer_json String DEFAULT ''
)
ENGINE = ReplacingMergeTree
ORDER BY (sponsor_id, operation_id, item_index)

-- name: item_batches
-- Every item batch of a link send, as the message the items topic carries: its recipients
-- exist nowhere else, and a batch that is held (paused, scheduled) or re-driven by the stall
-- watchdog goes out again from here. Code batches are re-planned from the request instead.
CREATE TABLE IF NOT EXISTS item_batches
(
    sponsor_id UInt64,
    operation_id String,
    batch_index UInt32,
    batch_json String CODEC(ZSTD(3)),
    stored_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(stored_at)
ORDER BY (sponsor_id, operation_id, batch_index)

-- name: code_reservations
-- The sponsor's code inventory: a code is available unless its latest row here is reserved
-- (for a dealer invitation under way) or transferred (to a dealer); released gives it back.
CREATE TABLE IF NOT EXISTS code_reservations
(
    sponsor_id UInt64,
    code String,
    subscription_tier_id UInt32,
    operation_id String,
    item_index UInt32,
    state LowCardinality(String),
    updated_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (sponsor_id, code)

-- name: dealer_invitations
CREATE TABLE IF NOT EXISTS dealer_invitations
(
    sponsor_id UInt64,
    operation_id String,
    item_index UInt32,
    row_number UInt32,
    email String,
    phone String,
    dealer_name String,
    tier LowCardinality(String),
    codes Array(String),
    token String,
    invitation_type LowCardinality(String),
    status LowCardinality(String),
    error_code Nullable(String),
    error_message Nullable(String),
    processed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(processed_at)
ORDER BY (sponsor_id, operation_id, item_index)

-- name: operations_job_type
-- Migration of an operations table created before job operations existed.
ALTER TABLE operations ADD COLUMN IF NOT EXISTS job_type Nullable(String)

-- name: recipients_dealer_json
-- Migration of a recipients table created before dealer invitations existed.
ALTER TABLE recipients ADD COLUMN IF NOT EXISTS dealer_json String DEFAULT ''

-- name: recipients_stored_at
-- When a recipient was stored: its personal data expires from then (retention.sql).
ALTER TABLE recipients ADD COLUMN IF NOT EXISTS stored_at DateTime('UTC') DEFAULT now()

-- name: items_provider_latency
-- Migration of an items table created before per-item provider latency was recorded.
ALTER TABLE items ADD COLUMN IF NOT EXISTS provider_latency_ms Float64 DEFAULT 0

-- name: idempotency_keys
-- The first successful answer to each Idempotency-Key, per sponsor and route, for a day.
CREATE TABLE IF NOT EXISTS idempotency_keys
(
    sponsor_id UInt64,
    scope LowCardinality(String),
    idempotency_key String,
    request_hash String,
    status_code UInt16,
    response String,
    created_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (sponsor_id, scope, idempotency_key)
TTL toDateTime(created_at) + INTERVAL 1 DAY

-- name: statistics_daily
-- What /statistics and the dashboard read (with statistics_hourly): operations per sponsor,
-- UTC day of submission, type, channel and status, with their item, cost and duration sums.
-- A refreshable view: every 10 seconds ClickHouse recomputes it from the latest version of
-- every operation and swaps it in whole, so it is exact as of its last refresh (a replayed
-- write is never counted twice) and a read costs the same however many operations exist.
CREATE MATERIALIZED VIEW IF NOT EXISTS statistics_daily
REFRESH EVERY 10 SECOND
ENGINE = MergeTree
ORDER BY (sponsor_id, day, operation_type, channel, status)
AS SELECT
    sponsor_id,
    toDate(created_at) AS day,
    operation_type,
    ifNull(channel, '') AS channel,
    status,
    count() AS operations,
    sum(processed_items) AS processed_items,
    sum(successful_items) AS successful_items,
    sum(failed_items) AS failed_items,
    sum(total_cost) AS total_cost,
    sumIf(dateDiff('millisecond', started_at, completed_at), completed_at IS NOT NULL)
        AS duration_ms,
    countIf(completed_at IS NOT NULL) AS timed_operations
FROM operations FINAL
GROUP BY sponsor_id, day, operation_type, channel, status

-- name: statistics_hourly
-- Operations per sponsor and UTC hour of submission, for the popular hours in any time zone.
CREATE MATERIALIZED VIEW IF NOT EXISTS statistics_hourly
REFRESH EVERY 10 SECOND
ENGINE = MergeTree
ORDER BY (sponsor_id, hour)
AS SELECT
    sponsor_id,
    toStartOfHour(created_at) AS hour,
    count() AS operations,
    sum(processed_items) AS processed_items,
    sum(successful_items) AS successful_items
FROM operations FINAL
GROUP BY sponsor_id, hour
