-- Registration, account and a token's revocation mark in one consistent read, as one JSON string
-- (one bulk reply parses far faster than nested arrays); with ARGV[2] == '1' the account's notes too,
-- so the protected API's list costs one round trip with its token check.
-- KEYS: account hash, registration hash, revocation mark of the token (unused if ARGV[1] == ''),
--       notes hash (unused unless ARGV[2] == '1')
-- ARGV: token id ('' = none), '1' to read the notes
local registration = redis.call('HGETALL', KEYS[2])
if #registration == 0 then return false end
local account = redis.call('HGETALL', KEYS[1])
if #account == 0 then return false end
local function object(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
local out = {r = object(registration), a = object(account)}
if ARGV[1] ~= '' then
  local mark = redis.call('GET', KEYS[3])
  if mark then out.m = mark end
end
if ARGV[2] == '1' then out.n = object(redis.call('HGETALL', KEYS[4])) end
return cjson.encode(out)
