-- The delivery log newest first, below a seq, filtered by endpoint and status: up to ``limit`` hashes
-- (HGETALL). Read-only.
-- KEYS: log (seq -> id)
-- ARGV: prefix, highest score ('+inf' or '(SEQ'), endpoint or '', status or '', limit
local p, max, endpoint, status, limit = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local out = {}
while #out < limit do
  local page = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'WITHSCORES', 'LIMIT', 0, 100)
  if #page == 0 then break end
  for j = 1, #page, 2 do
    local d = redis.call('HMGET', p .. 'd:' .. page[j], 'endpoint', 'status')
    if d[1] and (endpoint == '' or d[1] == endpoint) and (status == '' or d[2] == status) then
      out[#out + 1] = redis.call('HGETALL', p .. 'd:' .. page[j])
      if #out >= limit then break end
    end
  end
  max = '(' .. page[#page]
end
return out
