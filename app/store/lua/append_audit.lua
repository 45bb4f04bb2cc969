-- Append one audit event with the next integer id. KEYS: sequence, stream.  ARGV: event JSON, max length
local id = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-1', 'e', ARGV[1])
return id
