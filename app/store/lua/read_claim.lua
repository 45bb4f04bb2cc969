-- A claim with its account's expiry: {expires_at or '', claim data}; false when either is missing.
-- KEYS: account hash, claim hash
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local data = redis.call('HGET', KEYS[2], 'data')
if not data then return false end
return {redis.call('HGET', KEYS[1], 'expires_at') or '', data}
