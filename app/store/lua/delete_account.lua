-- Delete an account with everything it owns, once. KEYS: account hash, registration-id set, notes hash
-- ARGV: now, mode ('expired': only an expired temporary account; 'live': only a live one; 'discard': a live
-- one whose creation is rolled back, with its outbox), registration key
-- prefix, claim key prefix
-- Returns {registrations, notes}, or 'gone' (no such account) / 'kept' (not in the state mode asks for).
local a = redis.call('HMGET', KEYS[1], 'kind', 'expires_at', 'note_count')
if not a[1] then return 'gone' end
local is_expired = a[2] ~= false and tonumber(a[2]) <= tonumber(ARGV[1])
if ARGV[2] == 'expired' then
  if a[1] ~= 'temporary' or not is_expired then return 'kept' end
elseif is_expired then
  return 'gone'
end
local regs = redis.call('SMEMBERS', KEYS[2])
for _, id in ipairs(regs) do redis.call('DEL', ARGV[3] .. id, ARGV[4] .. id) end  -- same hash tag: same slot
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if ARGV[2] == 'discard' then  -- a creation rolled back: it never happened, nor did its events
  redis.call('DEL', OUTBOX_STREAM, OUTBOX_STREAM .. ':sent')
  redis.call('ZREM', OUTBOX_ALL, OUTBOX.a)
  redis.call('ZREM', OUTBOX_PENDING, OUTBOX.a)
else
  emit({#regs, tonumber(a[3])})
end
return {#regs, tonumber(a[3])}
