-- Never move a grant's not_before back. KEYS: registration hash.  ARGV: not_before
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = tonumber(redis.call('HGET', KEYS[1], 'not_before') or '0')
if tonumber(ARGV[1]) > current then
  redis.call('HSET', KEYS[1], 'not_before', ARGV[1])
  emit()  -- only a move is a change
end
return 1
