-- A failed delivery is pending again, due now with no attempts, at the head of its queue (sent next),
-- with the events; 0 if it is missing or not failed.
-- KEYS: delivery hash, finished index (then the outbox's, see _outbox.lua)
-- ARGV: prefix, now
local p = ARGV[1]
local d = redis.call('HMGET', KEYS[1], 'status', 'endpoint', 'account', 'seq')
if d[1] ~= 'failed' then return 0 end
local id = string.sub(KEYS[1], #p + 3)
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempts', 0, 'next_at', ARGV[2])
redis.call('ZREM', KEYS[2], id)
log_index(p, id, d[4], d[2], 'failed', 'pending')
redis.call('LPUSH', queue_key(p, d[2], d[3]), id)
rescore(p, d[2], d[3])
emit()
return 1
