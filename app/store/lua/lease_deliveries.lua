-- Leases up to ``limit`` due queue heads of the given endpoints to ``holder``, earliest due first: the
-- first ``limit`` queues of each endpoint by due score, then by next_at and seq (SQLite's order; a head
-- whose lease ran out keeps its place by next_at). Each leased queue is rescored to the lease's end, so
-- nobody else is given it meanwhile. Returns each leased delivery's hash (HGETALL).
-- KEYS: the due index of each endpoint
-- ARGV: prefix, now, lease end, holder, limit, then the endpoint of each key
local p, now, lease_end, holder, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local found = {}
for i, due in ipairs(KEYS) do
  local endpoint = ARGV[5 + i]
  local page = redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, limit)
  for j = 1, #page, 2 do
    local account = page[j]
    local head = redis.call('LINDEX', queue_key(p, endpoint, account), 0)
    if head then
      local d = redis.call('HMGET', p .. 'd:' .. head, 'next_at', 'seq')
      found[#found + 1] = {endpoint, account, head, tonumber(d[1]), tonumber(d[2])}
    else
      redis.call('ZREM', due, account)  -- an emptied queue's stale entry
    end
  end
end
table.sort(found, function(a, b) return a[4] < b[4] or (a[4] == b[4] and a[5] < b[5]) end)

local out = {}
for _, f in ipairs(found) do
  if #out >= limit then break end
  local key = p .. 'd:' .. f[3]
  local d = redis.call('HMGET', key, 'status', 'next_at', 'leased_until')
  -- Checked again: an endpoint named twice offers the same head twice.
  if d[1] == 'pending' and tonumber(d[2]) <= now and (not d[3] or tonumber(d[3]) <= now) then
    redis.call('HSET', key, 'leased_by', holder, 'leased_until', lease_end)
    rescore(p, f[1], f[2])
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
return out
