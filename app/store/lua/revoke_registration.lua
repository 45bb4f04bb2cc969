-- Kill a live, unrevoked grant. KEYS: registration hash.  ARGV: now, revoked_at
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local r = redis.call('HMGET', KEYS[1], 'expires_at', 'revoked_at')
if r[2] then return 0 end
if r[1] and tonumber(r[1]) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'revoked_at', ARGV[2])
emit()
return 1
