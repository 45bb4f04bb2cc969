-- An account's undelivered events, in commit order. KEYS: outbox stream.  ARGV: limit
-- Returns a flat list of event bodies.
local sent = redis.call('GET', KEYS[1] .. ':sent')
local rows = redis.call('XRANGE', KEYS[1], sent and ('(' .. sent) or '-', '+', 'COUNT', ARGV[1])
local out = {}
for _, row in ipairs(rows) do
  local f = row[2]
  for i = 1, #f, 2 do if f[i] == 'e' then out[#out + 1] = f[i + 1] end end
end
return out
