-- KEYS: account hash, notes hash.  ARGV: now, note id
local exp = redis.call('HGET', KEYS[1], 'expires_at')
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if exp and tonumber(exp) <= tonumber(ARGV[1]) then return 0 end
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'note_count', -1)
return 1
