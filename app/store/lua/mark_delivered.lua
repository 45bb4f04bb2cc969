-- Advance an outbox's delivered cursor through one undelivered event; once nothing is left undelivered
-- the account leaves its slot's pending index. KEYS: outbox stream, pending index.  ARGV: account id,
-- event id, how many entries to look through.  Returns 1, or 0 if the event is not undelivered there.
local sent_key = KEYS[1] .. ':sent'
local sent = redis.call('GET', sent_key)
local rows = redis.call('XRANGE', KEYS[1], sent and ('(' .. sent) or '-', '+', 'COUNT', ARGV[3])
for i, row in ipairs(rows) do
  local f = row[2]
  for j = 1, #f, 2 do
    if f[j] == 'id' and f[j + 1] == ARGV[2] then
      redis.call('SET', sent_key, row[1])
      local ttl = redis.call('PTTL', KEYS[1])
      if ttl > 0 then redis.call('PEXPIRE', sent_key, ttl) else redis.call('PERSIST', sent_key) end
      if i == #rows and #redis.call('XRANGE', KEYS[1], '(' .. row[1], '+', 'COUNT', 1) == 0 then
        redis.call('ZREM', KEYS[2], ARGV[1])
      end
      return 1
    end
  end
end
return 0
