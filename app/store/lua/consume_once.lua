-- First writer wins until the stored expiry; a lapsed mark counts as absent.
-- KEYS: the mark.  ARGV: expires_at, now, ttl_ms (space reclamation only)
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
