-- Forgets up to ``limit`` finished deliveries made before ``before``, oldest first; returns how many.
-- KEYS: finished index (id -> created_at), log
-- ARGV: prefix, before, limit
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. 'd:' .. id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return #ids
