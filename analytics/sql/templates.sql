-- Message templates saved by sponsors.

-- name: templates
SELECT name, channel, message, batch_size, max_concurrency, retry_attempts, updated_at
FROM templates FINAL WHERE sponsor_id = {sponsor:UInt64} ORDER BY name
