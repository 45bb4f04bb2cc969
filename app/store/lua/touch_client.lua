-- A use of a self-registered client: move its expiry forward. KEYS: client hash.
-- ARGV: new expires_at, now, the key's space-only TTL in ms. 0 if the client is gone or expired.
local e = redis.call('HGET', KEYS[1], 'expires_at')
if not e or tonumber(e) <= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[1]) > tonumber(e) then
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
