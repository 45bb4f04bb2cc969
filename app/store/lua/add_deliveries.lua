-- Stores each delivery not stored yet at the tail of its queue; returns how many were new. A queue that
-- was empty is scored by its new head's next_at.
-- KEYS: seq counter
-- ARGV: prefix, then per delivery: id, endpoint, account, next_at, attempts, created_at, record JSON
local p, added = ARGV[1], 0
for i = 2, #ARGV, 7 do
  local id, endpoint, account, next_at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = p .. 'd:' .. id
  if redis.call('EXISTS', key) == 0 then
    local seq = redis.call('INCR', KEYS[1])
    redis.call('HSET', key, 'data', ARGV[i + 6], 'endpoint', endpoint, 'account', account, 'status', 'pending',
      'seq', seq, 'attempts', ARGV[i + 4], 'next_at', next_at, 'created_at', ARGV[i + 5])
    log_index(p, id, seq, endpoint, nil, 'pending')
    if redis.call('RPUSH', queue_key(p, endpoint, account), id) == 1 then
      redis.call('ZADD', p .. 'due:' .. endpoint, next_at, account)
    end
    added = added + 1
  end
end
return added
