-- Stable views for analysts (docs/analytics.md), replaced on every start so they follow the
-- tables underneath. Each shows one row per thing, its latest version (no FINAL, no argMax
-- needed by the reader). A v1 view keeps its columns and their meaning; columns may be
-- added; a change that breaks a query comes as v2 beside it. Table aliases are long on
-- purpose: ClickHouse reads `x.column` as database `x` first, so an alias must not be a
-- database's name.

-- name: v1_operations
CREATE OR REPLACE VIEW v1_operations AS
SELECT v1_op.operation_id AS operation_id,
       v1_op.sponsor_id AS sponsor_id,
       v1_op.operation_type AS operation_type,
       v1_op.operation_name AS operation_name,
       v1_op.status AS status,
       v1_op.total_items AS total_items,
       v1_op.processed_items AS processed_items,
       v1_op.successful_items AS successful_items,
       v1_op.failed_items AS failed_items,
       v1_op.skipped_items AS skipped_items,
       v1_op.created_at AS created_at,
       v1_op.started_at AS started_at,
       v1_op.completed_at AS completed_at,
       dateDiff('millisecond', v1_op.started_at, v1_op.completed_at) AS duration_ms,
       v1_op.requested_by AS requested_by,
       v1_op.channel AS channel,
       v1_op.subscription_tier_id AS subscription_tier_id,
       v1_op.code_prefix AS code_prefix,
       v1_op.total_cost AS total_cost,
       v1_op.job_type AS job_type,
       nullIf(JSONExtractString(v1_req.request_json, 'retryOf'), '') AS retry_of,
       nullIf(JSONExtractString(v1_req.request_json, 'metadata', 'campaignId'), '') AS campaign_id,
       if(JSONHas(v1_req.request_json, 'metadata'), JSONExtractRaw(v1_req.request_json, 'metadata'), '{}')
           AS metadata
FROM operations AS v1_op FINAL
LEFT JOIN (SELECT sponsor_id, operation_id, request_json FROM operation_requests FINAL) AS v1_req
    ON v1_req.sponsor_id = v1_op.sponsor_id AND v1_req.operation_id = v1_op.operation_id
SETTINGS join_use_nulls = 0

-- name: v1_items
CREATE OR REPLACE VIEW v1_items AS
SELECT sponsor_id, operation_id, item_index, item_id, operation_type, status,
       result_data, error_code, error_message, error_category, is_retryable, retry_count,
       attempts, processed_at, processing_duration_ms, provider_latency_ms, channel, cost
FROM items FINAL

-- name: v1_sends
-- Messages sent (or tried) over a channel: link sends and dealer invitations by SMS.
CREATE OR REPLACE VIEW v1_sends AS
SELECT sponsor_id, operation_id, item_index, operation_type, assumeNotNull(channel) AS channel,
       status, toBool(status = 'Success') AS delivered, cost, attempts, error_code,
       error_category, processed_at, provider_latency_ms
FROM (SELECT * FROM items FINAL WHERE channel IS NOT NULL)

-- name: v1_recipients
-- Who a send went to (personal data). calling_code: the E.164 country calling code of a phone
-- number (1 to 3 digits, by the ITU's assignment), empty for e-mail addresses.
CREATE OR REPLACE VIEW v1_recipients AS
SELECT sponsor_id, operation_id, item_index, name, address,
       if(startsWith(address, '+'),
          extract(address, '^\\+(1|7|2[07]|3[0-469]|4[013-9]|5[1-8]|6[0-6]|8[1246]|9[0-58]|\\d{3})'),
          '') AS calling_code
FROM recipients FINAL

-- name: v1_codes
-- Every generated code with its inventory state now: available, reserved (for a dealer
-- invitation under way), transferred (to a dealer) or expired.
CREATE OR REPLACE VIEW v1_codes AS
SELECT v1_code.sponsor_id AS sponsor_id, v1_code.operation_id AS operation_id, v1_code.item_index AS item_index,
       v1_code.code AS code, v1_code.subscription_tier_id AS subscription_tier_id,
       v1_code.batch_name AS batch_name, v1_code.created_at AS created_at, v1_code.expires_at AS expires_at,
       multiIf(v1_state.state IN ('reserved', 'transferred'), v1_state.state,
               v1_code.expires_at <= now64(3), 'expired', 'available') AS state,
       if(v1_state.state = '', NULL, v1_state.updated_at) AS state_changed_at
FROM codes AS v1_code FINAL
LEFT JOIN (SELECT sponsor_id, code, state, updated_at FROM code_reservations FINAL) AS v1_state
    ON v1_state.sponsor_id = v1_code.sponsor_id AND v1_state.code = v1_code.code
SETTINGS join_use_nulls = 0

-- name: v1_dealer_invitations
CREATE OR REPLACE VIEW v1_dealer_invitations AS
SELECT sponsor_id, operation_id, row_number, email, phone, dealer_name, tier, codes,
       invitation_type, status, error_code, error_message, processed_at
FROM dealer_invitations FINAL
