-- Sliding-window counters (two fixed buckets), all-or-nothing: the same math as app/store/window.py.
-- Returns JSON [[allowed, estimate, retry_after], ...] with each number as a string.
-- KEYS: one hash per counter (fields b, c, p, e)
-- ARGV: now, window, grace_ms, then per key: limit ('' = none), increment (0 or 1)
local now, window, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local current = math.floor(now / window)

local function retry_after(b, c, p, limit)
  if limit <= 0 then return window end
  local frac = now / window - b
  local room = limit - 1 - c
  if room >= 0 and p > 0 then
    local needed = 1.0 - room / p
    if needed < 1.0 then return math.max(0.0, (needed - frac) * window) end
  end
  local needed_next = 0.0
  if c > 0 then needed_next = math.max(0.0, 1.0 - (limit - 1) / c) end
  return (1.0 - frac) * window + needed_next * window
end

local states, refused = {}, false
for i, key in ipairs(KEYS) do
  local b, c, p = 0, 0, 0
  local v = redis.call('HMGET', key, 'b', 'c', 'p', 'e')
  if v[1] and tonumber(v[4]) > now then b, c, p = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]) end
  if b ~= current then
    if b == current - 1 then p = c else p = 0 end
    b, c = current, 0
  end
  local est = p * (1.0 - (now / window - b)) + c
  local limit, inc = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  local no = limit ~= '' and est + 1 > tonumber(limit)  -- would one more hit fit (counted or not)
  if no then refused = true end
  states[i] = {b, c, p, est, inc, no, limit}
end

local out = {}
for i, key in ipairs(KEYS) do
  local b, c, p, est, inc, no, limit = unpack(states[i])
  if refused then
    local retry = 0
    if no then retry = retry_after(b, c, p, tonumber(limit)) end
    out[i] = {no and '0' or '1', string.format('%.17g', est), string.format('%.17g', retry)}
  else
    if inc == 1 then
      local e = (b + 2) * window
      redis.call('HSET', key, 'b', b, 'c', c + 1, 'p', p, 'e', string.format('%.17g', e))
      redis.call('PEXPIRE', key, math.floor((e - now) * 1000 + grace))
    end
    out[i] = {'1', string.format('%.17g', est + inc), '0'}
  end
end
return cjson.encode(out)  -- numbers travel as %.17g strings: cjson would round them to 14 digits
