-- Every registration of an account with the account's expiry, as JSON {"e": expiry or "", "r": [{...}]};
-- false when the account does not exist. KEYS: account hash, registration-id set.  ARGV: registration key prefix
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local regs = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do  -- same hash tag: same slot
  local flat = redis.call('HGETALL', ARGV[1] .. id)
  if #flat > 0 then
    local r = {}
    for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
    regs[#regs + 1] = r
  end
end
return cjson.encode({e = redis.call('HGET', KEYS[1], 'expires_at') or '', r = regs})
