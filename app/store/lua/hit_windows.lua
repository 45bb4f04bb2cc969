-- Sliding-window counters, all-or-nothing (the windows prelude, ``_windows.lua``, comes first).
-- Returns JSON [[allowed, estimate, retry_after], ...].
-- KEYS: one hash per counter (fields b, c, p, e)
-- ARGV: now, window, grace_ms, then per key: limit ('' = none), increment (0 or 1)
local _, out = count_windows(KEYS, ARGV, 1)
return cjson.encode(out)
