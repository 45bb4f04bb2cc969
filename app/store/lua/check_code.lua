-- Reserve-and-compare (app/store/port.py code_step, the same rule): a code is compared only while its
-- attempt shows a live code and the attempt and the claim have budget left; a wrong one is charged to
-- both in this same step, and the charge that spends a budget ends the attempt. A right one changes
-- nothing. Returns {outcome, claim data} (outcome: none | match | wrong), or false when the account or
-- the claim is gone or expired. Digests are fixed-length HMACs, and Lua 5.1 interns every string, so
-- `==` compares them by reference: no timing signal about how much of a digest matched.
-- KEYS: account hash, claim hash
-- ARGV: now, per_attempt, per_claim, then attempt id / digest pairs
local now, per_attempt, per_claim = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local account_expires = redis.call('HGET', KEYS[1], 'expires_at')
if redis.call('EXISTS', KEYS[1]) == 0 or (account_expires and tonumber(account_expires) <= now) then
  return false
end
local data = redis.call('HGET', KEYS[2], 'data')
if not data then return false end
local c = cjson.decode(data)
local function set(v) return v ~= nil and v ~= cjson.null end
if set(c.expires_at) and c.expires_at <= now then return false end

local live = c.status == 'pending' and set(c.attempt_id) and set(c.code_hash) and set(c.code_expires_at)
  and c.code_expires_at > now and c.attempt_failures < per_attempt and c.failures < per_claim
if not live then return {'none', data} end
local digests = {}
for i = 4, #ARGV, 2 do digests[ARGV[i]] = ARGV[i + 1] end
if digests[c.attempt_id] == c.code_hash then return {'match', data} end

c.version = c.version + 1
c.attempt_failures = c.attempt_failures + 1
c.failures = c.failures + 1
if c.attempt_failures >= per_attempt or c.failures >= per_claim then
  for _, field in ipairs({'attempt_id', 'attempt_hash', 'attempt_expires_at', 'code_hash', 'code_expires_at'}) do
    c[field] = cjson.null
  end
end
-- cjson writes an empty list as {}: drop empty lists (every list field of a Claim defaults to empty).
for field, value in pairs(c) do
  if type(value) == 'table' and next(value) == nil then c[field] = nil end
end
data = cjson.encode(c)
redis.call('HSET', KEYS[2], 'version', c.version, 'data', data)
return {'wrong', data}
