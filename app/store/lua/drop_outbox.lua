-- Drop an account from its slot's outbox indexes if its outbox is gone (reclaimed after its retention).
-- In the same slot as the outbox, so it never races a script that writes a new event.
-- KEYS: outbox stream, index of outboxes, pending index.  ARGV: account id
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
