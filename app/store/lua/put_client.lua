-- Store a new self-registered client. KEYS: client hash.  ARGV: record as JSON, expires_at, TTL in ms.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'body', ARGV[1], 'expires_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
