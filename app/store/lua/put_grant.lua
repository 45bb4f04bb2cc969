-- Create or replace one registration of a live account (an MCP client's grant). KEYS: account hash,
-- registration-id set, registration hash.  ARGV: now, registration id, k/v...
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local expires = redis.call('HGET', KEYS[1], 'expires_at')
if expires and tonumber(expires) <= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[3])
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('SADD', KEYS[2], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  for i = 2, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
emit()
return 1
