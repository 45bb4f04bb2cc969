-- Create or replace a provider delegation. KEYS: the delegation hash.
-- ARGV: mode ('create': only if absent; 'pending': unless an active one exists; 'force': always), k/v...
local status = redis.call('HGET', KEYS[1], 'status')
if ARGV[1] == 'create' and status then return 0 end
if ARGV[1] == 'pending' and status == 'active' then return 0 end
redis.call('DEL', KEYS[1])
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
return 1
