-- Every endpoint with a state: {name, HGETALL of its state hash} pairs. Read-only.
-- KEYS: the set of endpoint names
-- ARGV: prefix
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = {name, redis.call('HGETALL', ARGV[1] .. 'ep:' .. name)}
end
return out
