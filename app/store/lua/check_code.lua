-- Reserve-and-compare (app/store/port.py code_step, the same rule): a code is compared only while the
-- claim is pending with budget left, some attempt shows a live code and a digest was given for every
-- attempt of the claim (else the caller read an older claim). A wrong one is charged to the window and the claim in this same step, and the charge
-- that spends a budget ends every attempt. A right one changes nothing. Returns {outcome, claim data,
-- matched attempt id or ''} (outcome: none | match | wrong), or false when the account or the claim is
-- gone or expired. Digests are fixed-length HMACs, and Lua 5.1 interns every string, so `==` compares
-- them by reference: no timing signal about how much of a digest matched.
-- KEYS: account hash, claim hash (then the outbox's, see _outbox.lua)
-- ARGV: now, per_window, per_claim, then attempt id / digest pairs
local now, per_window, per_claim = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local account_expires = redis.call('HGET', KEYS[1], 'expires_at')
if redis.call('EXISTS', KEYS[1]) == 0 or (account_expires and tonumber(account_expires) <= now) then
  return false
end
local data = redis.call('HGET', KEYS[2], 'data')
if not data then return false end
local c = cjson.decode(data)
local function set(v) return v ~= nil and v ~= cjson.null end
if set(c.expires_at) and c.expires_at <= now then return false end

local digests = {}
for i = 4, #ARGV, 2 do digests[ARGV[i]] = ARGV[i + 1] end
local coded = {}
for _, a in ipairs(set(c.attempts) and c.attempts or {}) do
  if not digests[a.id] then return {'none', data, ''} end  -- the caller read an older claim
  if set(a.code_hash) and set(a.code_expires_at) and a.code_expires_at > now then coded[#coded + 1] = a end
end
local window_failures = set(c.window_failures) and c.window_failures or 0
local failures = set(c.failures) and c.failures or 0
if c.status ~= 'pending' or #coded == 0 or window_failures >= per_window or failures >= per_claim then
  return {'none', data, ''}
end
for _, a in ipairs(coded) do
  if digests[a.id] == a.code_hash then return {'match', data, a.id} end
end

c.version = c.version + 1
c.window_failures = window_failures + 1
c.failures = failures + 1
if c.window_failures >= per_window or c.failures >= per_claim then
  local ended = {}
  for _, a in ipairs(set(c.attempts) and c.attempts or {}) do ended[a.id] = true end
  c.attempts = {}
  emit(nil, ended)  -- the charge that spends a budget ends every attempt: their events, in this step
end
-- cjson writes an empty list as {}: drop empty lists (every list field of a Claim defaults to empty).
for field, value in pairs(c) do
  if type(value) == 'table' and next(value) == nil then c[field] = nil end
end
data = cjson.encode(c)
redis.call('HSET', KEYS[2], 'version', c.version, 'data', data)
return {'wrong', data, ''}
