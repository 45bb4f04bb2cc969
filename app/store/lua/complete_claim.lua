-- The claim lands, all or nothing, if the stored claim still has the expected version: the account takes
-- its new kind, expiry, quotas and owner (keeping its notes and count), the registration and the claim
-- are replaced. A persistent account loses every backend TTL: nothing it owns may vanish any more.
-- KEYS: account hash, registration-id set, notes hash, registration hash, claim hash
-- ARGV: expected version, claim version, claim data, ttl_ms ('' = persistent), kind, expires_at ('' = none),
--       quota_notes, quota_note_bytes, owner ('' = none), registration key prefix, claim key prefix,
--       registration id, registration k/v...
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[5], 'version')
if not current or tonumber(current) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'kind', ARGV[5], 'quota_notes', ARGV[7], 'quota_note_bytes', ARGV[8])
for field, value in pairs({expires_at = ARGV[6], owner = ARGV[9]}) do
  if value == '' then redis.call('HDEL', KEYS[1], field) else redis.call('HSET', KEYS[1], field, value) end
end
local fields = {}
for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], unpack(fields))
redis.call('SADD', KEYS[2], ARGV[12])
redis.call('HSET', KEYS[5], 'version', ARGV[2], 'data', ARGV[3])
local keys = {KEYS[1], KEYS[2], KEYS[3]}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do  -- same hash tag: same slot
  keys[#keys + 1] = ARGV[10] .. id
  keys[#keys + 1] = ARGV[11] .. id
end
for _, key in ipairs(keys) do
  if ARGV[4] == '' then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, ARGV[4]) end
end
emit()
return 1
