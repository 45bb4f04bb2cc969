-- Compare-and-set a claim on its version: of two racing transitions exactly one lands. The claim lives
-- as long as its account (same TTL). KEYS: account hash, claim hash
-- ARGV: expected version ('' = only if there is no claim yet), new version, claim data
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[2], 'version')
if ARGV[1] == '' then
  if current then return 0 end
elseif not current or tonumber(current) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[2], 'version', ARGV[2], 'data', ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) else redis.call('PERSIST', KEYS[2]) end
emit()
return 1
