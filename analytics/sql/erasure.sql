-- Right to erasure: every row that holds one person's address (an E.164 phone number or a
-- normalised e-mail address). `count_*` says how many rows hold it, `erase_*` deletes them
-- (ClickHouse lightweight deletes: gone from reads at once, from disk at the next merge).
-- Rows that hold the address inside JSON (item batches, requests, stored answers) go whole.

-- name: count_recipients
SELECT count() FROM recipients WHERE address = {address:String}

-- name: erase_recipients
DELETE FROM recipients WHERE address = {address:String}

-- name: count_dealer_invitations
SELECT count() FROM dealer_invitations WHERE email = {address:String} OR phone = {address:String}

-- name: erase_dealer_invitations
DELETE FROM dealer_invitations WHERE email = {address:String} OR phone = {address:String}

-- name: count_item_batches
SELECT count() FROM item_batches WHERE position(batch_json, {address:String}) > 0

-- name: erase_item_batches
DELETE FROM item_batches WHERE position(batch_json, {address:String}) > 0

-- name: count_operation_requests
SELECT count() FROM operation_requests WHERE position(request_json, {address:String}) > 0

-- name: erase_operation_requests
DELETE FROM operation_requests WHERE position(request_json, {address:String}) > 0

-- name: count_idempotency_keys
SELECT count() FROM idempotency_keys WHERE position(response, {address:String}) > 0

-- name: erase_idempotency_keys
DELETE FROM idempotency_keys WHERE position(response, {address:String}) > 0

-- name: count_operation_snapshots
SELECT count() FROM operation_snapshots WHERE position(snapshot_json, {address:String}) > 0

-- name: erase_operation_snapshots
DELETE FROM operation_snapshots WHERE position(snapshot_json, {address:String}) > 0
