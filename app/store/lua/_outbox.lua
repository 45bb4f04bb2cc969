-- Prepended to every script that changes an account: the change's domain events go to the account's
-- outbox in the same script, so both land or neither (spec/events.md). The last three KEYS are the
-- outbox stream, the index of outboxes (account id -> newest event's ms) and the index of outboxes with
-- undelivered events (account id -> ms), the indexes of the account's own hash slot. ARGV[1] is taken off
-- here (the script's own ARGV then start at 1): {"a": account id, "k": account hash key ('' for the
-- service), "t": retention ms, "m": outbox max length, "e": [[ms, event id, body, attempt id or the
-- event's type], ...]}.
local OUTBOX = cjson.decode(table.remove(ARGV, 1))
local OUTBOX_STREAM, OUTBOX_ALL, OUTBOX_PENDING = KEYS[#KEYS - 2], KEYS[#KEYS - 1], KEYS[#KEYS]

-- ``counts``: a deletion's {registrations, notes}; ``only``: a set of attempt ids (or event types), to
-- write only the events about those attempts (or of those types).
local function emit(counts, only)
  local written = 0
  for _, e in ipairs(OUTBOX.e) do
    if not only or only[e[4]] then
      local body = e[3]
      if counts then  -- a deletion's counts, known only here: appended to the body's JSON object
        body = string.sub(body, 1, -2) .. ',"registrations":' .. counts[1] .. ',"notes":' .. counts[2] .. '}'
      end
      redis.call('XADD', OUTBOX_STREAM, 'MAXLEN', '~', OUTBOX.m, '*', 'id', e[2], 'e', body)
      redis.call('ZADD', OUTBOX_ALL, 'GT', e[1], OUTBOX.a)
      redis.call('ZADD', OUTBOX_PENDING, 'NX', e[1], OUTBOX.a)
      written = written + 1
    end
  end
  if written == 0 then return end
  -- The outbox outlives its account by the retention period: a deletion's event stays readable. The
  -- service pseudo-account (no account hash, k = '') is never deleted: its outbox persists.
  local sent = OUTBOX_STREAM .. ':sent'
  local ttl = OUTBOX.k == '' and -1 or redis.call('PTTL', OUTBOX.k)
  for _, key in ipairs({OUTBOX_STREAM, sent}) do
    if ttl == -1 then
      redis.call('PERSIST', key)
    elseif ttl > 0 then
      redis.call('PEXPIRE', key, ttl + OUTBOX.t)
    else
      redis.call('PEXPIRE', key, OUTBOX.t)
    end
  end
end

