-- A disabled endpoint is enabled again: every pending delivery of its queues due later than now is due
-- now (the backlog flows at once, not at the retry times it had when disabled), each queue rescored;
-- then the events. 0 if it was not disabled.
-- KEYS: the endpoint's state hash, its due index (then the outbox's, see _outbox.lua)
-- ARGV: prefix, endpoint, now
local p, endpoint, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('HDEL', KEYS[1], 'disabled_at') == 0 then return 0 end
redis.call('SADD', p .. 'eps', endpoint)
for _, account in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  for _, id in ipairs(redis.call('LRANGE', queue_key(p, endpoint, account), 0, -1)) do
    local key = p .. 'd:' .. id
    if tonumber(redis.call('HGET', key, 'next_at')) > now then redis.call('HSET', key, 'next_at', ARGV[3]) end
  end
  rescore(p, endpoint, account)
end
emit()
return 1
