-- The delivery log newest first, below a seq, from the index of the filter (see ``log_index``): up to
-- ``limit`` hashes (HGETALL). Read-only.
-- KEYS: the log index
-- ARGV: prefix, highest score ('+inf' or '(SEQ'), limit
local out = {}
for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '-inf', 'LIMIT', 0, tonumber(ARGV[3]))) do
  local d = redis.call('HGETALL', ARGV[1] .. 'd:' .. id)
  if #d > 0 then out[#out + 1] = d end
end
return out
