-- Create an account with its first registration, atomically, with its events (the windows and outbox
-- preludes come first). On Redis Cluster the KEYS are the account's slot alone; on a single Redis the
-- script also counts the registration in its rate-limit windows (nothing is created or counted when
-- one refuses) and enters the account in the service-wide indexes: one round trip per registration.
-- KEYS: account hash, registration-id set, registration hash, then X index keys (the expiry index, the
--       id index and, with an owner, the owner's set; X = 0 on Redis Cluster), then W window counters,
--       then the outbox's three
-- ARGV: ttl_ms ('' = persistent), registration id, X, expires_at ('' = none), account id, W, now, window,
--       grace_ms, W x (limit, increment), then the account's and the registration's field/value pairs as
--       JSON arrays of strings (two arguments, not forty: redis-py packs each argument in Python)
local X, W = tonumber(ARGV[3]), tonumber(ARGV[6])
local windows = {}
for i = 1, W do windows[i] = KEYS[3 + X + i] end
local refused, counted = count_windows(windows, ARGV, 7)
if refused then return cjson.encode(counted) end
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('ERR authmd: account or registration already exists')
end
local account = cjson.decode(ARGV[10 + 2 * W])
local registration = cjson.decode(ARGV[11 + 2 * W])
if X > 0 then  -- the indexes first, as the separate steps on Redis Cluster go
  if ARGV[4] ~= '' then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5]) end
  redis.call('ZADD', KEYS[5], 0, ARGV[5])
end
redis.call('HSET', KEYS[1], unpack(account))
redis.call('HSET', KEYS[3], unpack(registration))
redis.call('SADD', KEYS[2], ARGV[2])
if ARGV[1] ~= '' then
  -- Backend TTLs only reclaim space, well after the stored expiry the sweeper acts on.
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
if X > 2 then redis.call('SADD', KEYS[6], ARGV[5]) end
emit()
return cjson.encode(counted)
