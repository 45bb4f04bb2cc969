-- The account's expiry with one note or all of them, as JSON {"e": expiry or "", "n": {id: value}};
-- false when the account does not exist. KEYS: account hash, notes hash.  ARGV: note id ('' = all)
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local notes = {}
if ARGV[1] == '' then
  local flat = redis.call('HGETALL', KEYS[2])
  for i = 1, #flat, 2 do notes[flat[i]] = flat[i + 1] end
else
  local value = redis.call('HGET', KEYS[2], ARGV[1])
  if value then notes[ARGV[1]] = value end
end
return cjson.encode({e = redis.call('HGET', KEYS[1], 'expires_at') or '', n = notes})
