-- Stable views for analysts (docs/analytics.md), replaced on every start so they follow the
-- tables underneath. Each shows one row per thing, its latest version (no FINAL, no argMax
-- needed by the reader). A v1 view keeps its columns and their meaning; columns may be
-- added; a change that breaks a query comes as v2 beside it.

-- name: v1_operations
CREATE OR REPLACE VIEW v1_operations AS
SELECT o.operation_id AS operation_id,
       o.sponsor_id AS sponsor_id,
       o.operation_type AS operation_type,
       o.operation_name AS operation_name,
       o.status AS status,
       o.total_items AS total_items,
       o.processed_items AS processed_items,
       o.successful_items AS successful_items,
       o.failed_items AS failed_items,
       o.skipped_items AS skipped_items,
       o.created_at AS created_at,
       o.started_at AS started_at,
       o.completed_at AS completed_at,
       dateDiff('millisecond', o.started_at, o.completed_at) AS duration_ms,
       o.requested_by AS requested_by,
       o.channel AS channel,
       o.subscription_tier_id AS subscription_tier_id,
       o.code_prefix AS code_prefix,
       o.total_cost AS total_cost,
       nullIf(JSONExtractString(r.request_json, 'retryOf'), '') AS retry_of,
       nullIf(JSONExtractString(r.request_json, 'metadata', 'campaignId'), '') AS campaign_id,
       if(JSONHas(r.request_json, 'metadata'), JSONExtractRaw(r.request_json, 'metadata'), '{}')
           AS metadata
FROM operations AS o FINAL
LEFT JOIN (SELECT sponsor_id, operation_id, request_json FROM operation_requests FINAL) AS r
    ON r.sponsor_id = o.sponsor_id AND r.operation_id = o.operation_id
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
SELECT c.sponsor_id AS sponsor_id, c.operation_id AS operation_id, c.item_index AS item_index,
       c.code AS code, c.subscription_tier_id AS subscription_tier_id,
       c.batch_name AS batch_name, c.created_at AS created_at, c.expires_at AS expires_at,
       multiIf(r.state IN ('reserved', 'transferred'), r.state,
               c.expires_at <= now64(3), 'expired', 'available') AS state,
       if(r.state = '', NULL, r.updated_at) AS state_changed_at
FROM codes AS c FINAL
LEFT JOIN (SELECT sponsor_id, code, state, updated_at FROM code_reservations FINAL) AS r
    ON r.sponsor_id = c.sponsor_id AND r.code = c.code
SETTINGS join_use_nulls = 0

-- name: v1_dealer_invitations
CREATE OR REPLACE VIEW v1_dealer_invitations AS
SELECT sponsor_id, operation_id, row_number, email, phone, dealer_name, tier, codes,
       invitation_type, status, error_code, error_message, processed_at
FROM dealer_invitations FINAL
