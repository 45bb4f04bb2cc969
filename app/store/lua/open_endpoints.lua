-- Each named endpoint gets its first-configured time once (HSETNX: a later open keeps the first);
-- returns {name, HGETALL of its state hash} pairs, in the order named.
-- KEYS: the set of endpoint names
-- ARGV: prefix, now, then the names
local out = {}
for i = 3, #ARGV do
  local name = ARGV[i]
  redis.call('HSETNX', ARGV[1] .. 'ep:' .. name, 'since', ARGV[2])
  redis.call('SADD', KEYS[1], name)
  out[#out + 1] = {name, redis.call('HGETALL', ARGV[1] .. 'ep:' .. name)}
end
return out
