-- Forgets up to ``limit`` finished deliveries made before ``before``, oldest first; returns how many.
-- KEYS: finished index (id -> created_at)
-- ARGV: prefix, before, limit
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local d = redis.call('HMGET', p .. 'd:' .. id, 'endpoint', 'status')
  if d[1] then log_index(p, id, 0, d[1], d[2], nil) end
  redis.call('DEL', p .. 'd:' .. id)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
