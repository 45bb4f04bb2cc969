-- Create an account with its first registration, atomically, in the account's hash slot.
-- KEYS: account hash, registration-id set, registration hash
-- ARGV: ttl_ms ('' = persistent), registration id, n (account field pairs), account k/v..., registration k/v...
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('ERR authmd: account or registration already exists')
end
local n = tonumber(ARGV[3])
local account, registration = {}, {}
for i = 4, 3 + 2 * n do account[#account + 1] = ARGV[i] end
for i = 4 + 2 * n, #ARGV do registration[#registration + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(account))
redis.call('HSET', KEYS[3], unpack(registration))
redis.call('SADD', KEYS[2], ARGV[2])
if ARGV[1] ~= '' then
  -- Backend TTLs only reclaim space, well after the stored expiry the sweeper acts on.
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
emit()
return 1
