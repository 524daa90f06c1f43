-- Synthetic history for benchmarks, the analytics document's tests and demos: finished
-- operations of every kind with their items, requests, codes, recipients and invitations,
-- shaped like what the worker writes. Deterministic for a given {seed}; operation ids start
-- with `synth_<seed>_` so a run can be told apart (and removed) from real operations.
-- Operation sizes cycle through {sizes}.

-- name: operations
INSERT INTO operations
SELECT operation_id, sponsor_id, operation_type, operation_name, status, total_items,
       processed, successful, failed, processed - successful - failed AS skipped,
       created_at, created_at + toIntervalSecond(1) AS started_at,
       started_at + toIntervalMillisecond(total_items * 4 + h % 5000) AS completed_at,
       concat('sponsor-', toString(sponsor_id)), tier, prefix, channel,
       round(successful * multiIf(channel = 'SMS', 0.05, channel = 'WhatsApp', 0.03,
                                  channel = 'Email', 0.001, 0), 4),
       1 AS version, NULL AS job_type
FROM (
    SELECT concat('synth_', toString({seed:UInt64}), '_', leftPad(toString(number), 8, '0'))
               AS operation_id,
           cityHash64({seed:UInt64}, number) AS h,
           1 + number % {sponsors:UInt32} AS sponsor_id,
           multiIf(h % 10 < 6, 'BulkLinkSend', h % 10 < 9, 'BulkCodeGeneration',
                   'BulkDealerInvitation') AS operation_type,
           concat(operation_type, ' #', toString(number)) AS operation_name,
           {sizes:Array(UInt32)}[1 + number % length({sizes:Array(UInt32)})] AS total_items,
           multiIf(intDiv(h, 10) % 100 < 85, 'Completed', intDiv(h, 10) % 100 < 95,
                   'PartiallyCompleted', intDiv(h, 10) % 100 < 98, 'Failed', 'Cancelled')
               AS status,
           if(status = 'Cancelled', intDiv(total_items, 2), total_items) AS processed,
           multiIf(status = 'Completed', processed,
                   status = 'PartiallyCompleted', processed - intDiv(processed, 10),
                   status = 'Failed', 0, processed - intDiv(processed, 20)) AS successful,
           multiIf(status = 'Completed', 0, status = 'PartiallyCompleted', intDiv(processed, 10),
                   status = 'Failed', processed, intDiv(processed, 20)) AS failed,
           {since:DateTime64(3, 'UTC')}
               + toIntervalSecond(intDiv(h, 1000) % ({days:UInt32} * 86400)) AS created_at,
           if(operation_type = 'BulkCodeGeneration', toNullable(toUInt32(1 + h % 3)), NULL)
               AS tier,
           if(operation_type = 'BulkCodeGeneration', toNullable('SYN'), NULL) AS prefix,
           multiIf(operation_type = 'BulkLinkSend',
                   toNullable(['SMS', 'WhatsApp', 'Email'][1 + intDiv(h, 7) % 3]),
                   operation_type = 'BulkDealerInvitation', toNullable('SMS'), NULL) AS channel
    FROM numbers({operations:UInt64})
)

-- name: requests
INSERT INTO operation_requests
SELECT operation_id, sponsor_id, created_at,
       concat('{"operationId":', toJSONString(operation_id),
              ',"operationType":', toJSONString(operation_type),
              ',"sponsorId":', toString(sponsor_id),
              ',"totalItems":', toString(total_items),
              -- about every tenth link send retries its sponsor's operation before it
              if(operation_type = 'BulkLinkSend' AND number >= {sponsors:UInt32}
                     AND cityHash64(operation_id) % 10 = 0,
                 concat(',"retryOf":', toJSONString(concat('synth_', toString({seed:UInt64}), '_',
                        leftPad(toString(number - {sponsors:UInt32}), 8, '0')))), ''),
              ',"metadata":{"campaignId":', toJSONString(concat('CAMP-', toString(
                  cityHash64(operation_id) % 12))), '}}')
FROM (SELECT *, toUInt64(splitByChar('_', operation_id)[3]) AS number FROM operations
      WHERE startsWith(operation_id, concat('synth_', toString({seed:UInt64}), '_')))

-- name: items
INSERT INTO items
SELECT sponsor_id, operation_id, item_index, concat(operation_id, ':', toString(item_index)),
       operation_type, item_status,
       if(item_status = 'Success' AND operation_type = 'BulkCodeGeneration',
          toNullable(concat('SYN-', hex(cityHash64(operation_id, item_index)))), NULL),
       if(item_status = 'Failed', toNullable(error_code), NULL),
       if(item_status = 'Failed', toNullable(concat('synthetic ', error_code)), NULL),
       if(item_status = 'Failed',
          toNullable(if(error_code = 'INVALID_RECIPIENT', 'Validation', 'Network')), NULL),
       item_status = 'Failed' AND error_code != 'INVALID_RECIPIENT',
       0,
       started_at + toIntervalMillisecond(item_index * 4),
       20 + cityHash64(operation_id, item_index, 1) % 480,
       channel,
       if(item_status = 'Success',
          multiIf(channel = 'SMS', 0.05, channel = 'WhatsApp', 0.03, channel = 'Email', 0.001, 0),
          0),
       if(item_status = 'Failed' AND error_code != 'INVALID_RECIPIENT', 3, 1),
       if(channel IS NULL OR item_status = 'Skipped', 0,
          multiIf(channel = 'SMS', 180, channel = 'WhatsApp', 240, 90)
              + cityHash64(operation_id, item_index, 3) % 400)
FROM (
    SELECT sponsor_id, operation_id, operation_type, channel, assumeNotNull(started_at) AS started_at,
           successful_items, failed_items, arrayJoin(range(toUInt32(processed_items)))
               AS item_index,
           multiIf(item_index < successful_items, 'Success',
                   item_index < successful_items + failed_items, 'Failed', 'Skipped')
               AS item_status,
           ['INVALID_RECIPIENT', 'PROVIDER_TIMEOUT', 'RATE_LIMITED'][
               1 + cityHash64(operation_id, item_index, 2) % 3] AS error_code
    FROM operations
    WHERE startsWith(operation_id, concat('synth_', toString({seed:UInt64}), '_'))
)

-- name: recipients
INSERT INTO recipients
    (sponsor_id, operation_id, item_index, name, address, message, idempotency_key, dealer_json)
SELECT sponsor_id, operation_id, item_index, concat('Recipient ', toString(item_index)),
       if(channel = 'Email', concat('user', toString(item_index), '@example.com'),
          concat(['+90', '+49', '+44', '+1', '+33'][1 + cityHash64(operation_id, item_index) % 5],
                 toString(5000000000 + cityHash64(item_index) % 999999999))),
       'Merhaba, bağlantınız: https://example.com/l', concat(operation_id, ':',
       toString(item_index)), ''
FROM items
WHERE startsWith(operation_id, concat('synth_', toString({seed:UInt64}), '_'))
  AND operation_type IN ('BulkLinkSend', 'BulkDealerInvitation')

-- name: codes
INSERT INTO codes
SELECT i.sponsor_id, i.operation_id, i.item_index, assumeNotNull(i.result_data),
       assumeNotNull(o.subscription_tier_id), NULL, i.processed_at,
       i.processed_at + toIntervalDay(365)
FROM items AS i
INNER JOIN operations AS o ON o.operation_id = i.operation_id AND o.sponsor_id = i.sponsor_id
WHERE startsWith(i.operation_id, concat('synth_', toString({seed:UInt64}), '_'))
  AND i.operation_type = 'BulkCodeGeneration' AND i.status = 'Success'

-- name: transfers
-- Every seventh code went to a dealer.
INSERT INTO code_reservations
SELECT sponsor_id, code, subscription_tier_id, operation_id, item_index, 'transferred',
       created_at + toIntervalDay(1)
FROM codes
WHERE startsWith(operation_id, concat('synth_', toString({seed:UInt64}), '_'))
  AND item_index % 7 = 0

-- name: invitations
INSERT INTO dealer_invitations
SELECT sponsor_id, operation_id, item_index, item_index + 2,
       concat('dealer', toString(item_index), '@example.com'), '+905000000000',
       concat('Dealer ', toString(item_index)), 'Gold', [], hex(cityHash64(operation_id, item_index)),
       'Invite', if(status = 'Success', 'Success', 'Failed'), error_code, error_message,
       processed_at
FROM items
WHERE startsWith(operation_id, concat('synth_', toString({seed:UInt64}), '_'))
  AND operation_type = 'BulkDealerInvitation'
