-- Sliding-window counters (two fixed buckets), all-or-nothing: the same math as app/store/window.py.
-- Prepended to the scripts that count in windows. count_windows(keys, args, at): keys are one hash per
-- counter (fields b, c, p, e); args[at], args[at + 1], ... are now, window, grace_ms, then per key: limit
-- ('' = none), increment (0 or 1). Returns whether any was refused (then nothing moved) and the rows
-- [allowed, estimate, retry_after] with each number as a string (cjson would round them to 14 digits).

local function window_retry_after(now, window, b, c, p, limit)
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

local function count_windows(keys, args, at)
  local now, window, grace = tonumber(args[at]), tonumber(args[at + 1]), tonumber(args[at + 2])
  local current = math.floor(now / window)
  local states, refused = {}, false
  for i, key in ipairs(keys) do
    local b, c, p = 0, 0, 0
    local v = redis.call('HMGET', key, 'b', 'c', 'p', 'e')
    if v[1] and tonumber(v[4]) > now then b, c, p = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]) end
    if b ~= current then
      if b == current - 1 then p = c else p = 0 end
      b, c = current, 0
    end
    local est = p * (1.0 - (now / window - b)) + c
    local limit, inc = args[at + 1 + 2 * i], tonumber(args[at + 2 + 2 * i])
    local no = limit ~= '' and est + 1 > tonumber(limit)  -- would one more hit fit (counted or not)
    if no then refused = true end
    states[i] = {b, c, p, est, inc, no, limit}
  end
  local out = {}
  for i, key in ipairs(keys) do
    local b, c, p, est, inc, no, limit = unpack(states[i])
    if refused then
      local retry = 0
      if no then retry = window_retry_after(now, window, b, c, p, tonumber(limit)) end
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
  return refused, out
end
