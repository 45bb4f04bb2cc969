-- Advance a live, unrevoked grant's refresh family from exactly (family, seq) to seq + 1.
-- KEYS: registration hash.  ARGV: family, seq, new refresh expires_at, now, rotated_at
local r = redis.call('HMGET', KEYS[1], 'id', 'expires_at', 'revoked_at', 'refresh_family', 'refresh_seq')
if not r[1] or r[3] then return 0 end
if r[2] and tonumber(r[2]) <= tonumber(ARGV[4]) then return 0 end
if r[4] ~= ARGV[1] or tonumber(r[5] or '0') ~= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'refresh_seq', 1)
redis.call('HSET', KEYS[1], 'refresh_rotated_at', ARGV[5], 'refresh_expires_at', ARGV[3])
emit()
return 1
