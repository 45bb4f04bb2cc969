-- Bucketed sums of totals: one HMGET per minute or hour asked for. Every key is in the {m} slot.
-- KEYS: the hashes of the minutes or hours read, oldest first
-- ARGV: keys per bucket, then the series names
-- Returns per name, per bucket, the sum (name-major: name 1's buckets, then name 2's...).
local step, names = tonumber(ARGV[1]), #ARGV - 1
local buckets = math.floor(#KEYS / step)
local sums = {}
for i = 1, names * buckets do sums[i] = 0 end
for i, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(ARGV, 2))
  local bucket = math.floor((i - 1) / step)
  for j = 1, names do
    if values[j] then sums[(j - 1) * buckets + bucket + 1] = sums[(j - 1) * buckets + bucket + 1] + tonumber(values[j]) end
  end
end
return sums
