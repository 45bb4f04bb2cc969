-- Stores an attempt's outcome if ``holder`` still holds the lease (else 0, nothing written): releases
-- the lease, takes a delivery no longer pending off its queue (into the finished index, by creation
-- time, for trimming), rescores the queue, sets the endpoint's last success or failure time (none when
-- the attempt has none) and disables it if asked and enabled; then the events (a disabling's only if
-- it disabled). Returns 1.
-- KEYS: delivery hash, finished index (id -> created_at) (then the outbox's, see _outbox.lua)
-- ARGV: prefix, holder, record JSON, status, attempts, next_at, attempt time or '', '1' to disable the
--       endpoint or ''
local p, holder, status, at = ARGV[1], ARGV[2], ARGV[4], ARGV[7]
local d = redis.call('HMGET', KEYS[1], 'status', 'leased_by', 'endpoint', 'account', 'seq', 'created_at')
if d[1] ~= 'pending' or d[2] ~= holder then return 0 end
local id, endpoint, account = string.sub(KEYS[1], #p + 3), d[3], d[4]
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'status', status, 'attempts', ARGV[5], 'next_at', ARGV[6])
redis.call('HDEL', KEYS[1], 'leased_by', 'leased_until')
if status ~= 'pending' then
  -- Not necessarily the head: a manual retry may have been put before it while it was leased.
  redis.call('LREM', queue_key(p, endpoint, account), 1, id)
  redis.call('ZADD', KEYS[2], d[6], id)  -- the creation time stored when added, as SQLite's column
  log_index(p, id, d[5], endpoint, 'pending', status)
end
rescore(p, endpoint, account)

local state = p .. 'ep:' .. endpoint
local field = status == 'delivered' and 'last_success_at' or 'last_failure_at'
if at == '' then redis.call('HDEL', state, field) else redis.call('HSET', state, field, at) end
redis.call('SADD', p .. 'eps', endpoint)
if ARGV[8] == '1' and at ~= '' and redis.call('HSETNX', state, 'disabled_at', at) == 0 then
  -- Disabled already, by another delivery: one event says so; the others go out.
  local others = {}
  for _, e in ipairs(OUTBOX.e) do
    if e[4] ~= 'webhook_endpoint.disabled' then others[e[4]] = true end
  end
  emit(nil, others)
else
  emit()
end
return 1
