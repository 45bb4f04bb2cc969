-- Create a note unless the account is gone or full, atomically with its count.
-- KEYS: account hash, notes hash.  ARGV: now, note id, payload
local a = redis.call('HMGET', KEYS[1], 'expires_at', 'note_count', 'quota_notes')
if not a[2] then return 'account_gone' end
if a[1] and tonumber(a[1]) <= tonumber(ARGV[1]) then return 'account_gone' end
if tonumber(a[2]) >= tonumber(a[3]) then return 'quota_exceeded' end
local seq = redis.call('HINCRBY', KEYS[1], 'note_seq', 1)
redis.call('HINCRBY', KEYS[1], 'note_count', 1)
redis.call('HSET', KEYS[2], ARGV[2], seq .. ':' .. ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 'created'
