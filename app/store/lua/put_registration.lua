-- Replace one registration of an existing account, and its claim. KEYS: account hash, registration-id set,
-- registration hash, claim hash.  ARGV: registration id, claim version, claim data, k/v...
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[3], KEYS[4])
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('HSET', KEYS[4], 'version', ARGV[2], 'data', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
emit()
return 1
