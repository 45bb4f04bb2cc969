-- Prepended to every webhook script (after the outbox prelude where there is one). Every key is in the
-- service pseudo-account's slot under one prefix P (``P{a:service}:wh:``), passed by the caller: a
-- delivery hash P..'d:'..id (its record as JSON in ``data``; beside it endpoint, account, created_at and
-- the fields scripts change, as the caller wrote them: status, seq, attempts, next_at, leased_by,
-- leased_until), a queue list P..'q:'..endpoint..':'..account of pending ids (head first) and the due
-- index P..'due:'..endpoint.

local function queue_key(p, endpoint, account) return p .. 'q:' .. endpoint .. ':' .. account end

-- A queue's score in its endpoint's due index: when its head may next be leased (its next_at, or the
-- end of its lease while one holds); no entry once the queue is empty.
local function rescore(p, endpoint, account)
  local due = p .. 'due:' .. endpoint
  local head = redis.call('LINDEX', queue_key(p, endpoint, account), 0)
  if not head then
    redis.call('ZREM', due, account)
    return
  end
  local at = redis.call('HMGET', p .. 'd:' .. head, 'next_at', 'leased_until')
  local score = at[1]
  if at[2] and tonumber(at[2]) > tonumber(score) then score = at[2] end
  redis.call('ZADD', due, score, account)
end

-- The log's indexes, each delivery id by seq: every delivery (P..'log'), by endpoint ('log:e:'..EP),
-- by status ('log:s:'..STATUS) and by both ('log:es:'..STATUS..':'..EP), so a filtered listing reads
-- only what it returns. ``old``: the status it is indexed under (nil: not yet); ``new``: nil to drop it.
local function log_index(p, id, seq, endpoint, old, new)
  if old then
    redis.call('ZREM', p .. 'log:s:' .. old, id)
    redis.call('ZREM', p .. 'log:es:' .. old .. ':' .. endpoint, id)
  else
    redis.call('ZADD', p .. 'log', seq, id)
    redis.call('ZADD', p .. 'log:e:' .. endpoint, seq, id)
  end
  if new then
    redis.call('ZADD', p .. 'log:s:' .. new, seq, id)
    redis.call('ZADD', p .. 'log:es:' .. new .. ':' .. endpoint, seq, id)
  else
    redis.call('ZREM', p .. 'log', id)
    redis.call('ZREM', p .. 'log:e:' .. endpoint, id)
  end
end
