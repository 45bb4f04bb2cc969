-- Link a sign-in subject to a user unless another user holds it; a link to a user that no longer exists
-- (a racing sign-in that rolled back) may be replaced. Returns the user id the subject is linked to.
-- KEYS: the login.  ARGV: user id, the stale user id seen by the caller ('' = none)
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[2] then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
