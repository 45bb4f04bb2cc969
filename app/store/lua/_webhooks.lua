-- Prepended to every webhook script (after the outbox prelude where there is one). Every key is in the
-- service pseudo-account's slot under one prefix P (``P{a:service}:wh:``), passed by the caller: a
-- delivery hash P..'d:'..id (its record as JSON in ``data``; the fields scripts change beside it, as the
-- caller wrote them: status, seq, attempts, next_at, leased_by, leased_until), a queue list
-- P..'q:'..endpoint..':'..account of pending ids (head first) and the due index P..'due:'..endpoint.

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
