-- Add counts to per-minute and per-hour totals, all at once. Every key is in the {m} slot.
-- KEYS: the minute hashes, then the hour hashes (field = series name)
-- ARGV: how many keys are minute hashes, minute TTL s, hour TTL s, then per key: pairs, name/n pairs...
local minutes, at = tonumber(ARGV[1]), 4
for i, key in ipairs(KEYS) do
  local pairs_of = tonumber(ARGV[at])
  for j = at + 1, at + 2 * pairs_of, 2 do redis.call('HINCRBY', key, ARGV[j], ARGV[j + 1]) end
  at = at + 1 + 2 * pairs_of
  -- Retention is the key's TTL, renewed by each write (writes come while the bucket is current).
  redis.call('EXPIRE', key, i <= minutes and ARGV[2] or ARGV[3])
end
return 1
