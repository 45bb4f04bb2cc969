#!lua flags=no-writes,allow-cross-slot-keys
-- One cluster node's share of an outbox index walk (app/store/redis/events.py): every key is an index of
-- one slot this node serves, named in ARGV because the keys span slots (Redis 7's allow-cross-slot-keys
-- lets one script read them all, on one node). A key of a slot the node does not serve (a slot moving)
-- fails the script, and the caller walks slot by slot instead.
-- ARGV: lowest score, most entries per key (-1: all), then the index keys.
-- Returns {member, score, member, score, ...} of every entry scored at least the lowest.
local low, limit = ARGV[1], tonumber(ARGV[2])
local found = {}
for i = 3, #ARGV do
  local page = redis.call('ZRANGEBYSCORE', ARGV[i], low, '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
  for j = 1, #page do found[#found + 1] = page[j] end
end
return found
