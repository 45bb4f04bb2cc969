"""The shared store: Redis or Redis Cluster, for several stateless authmd instances.

Key layout (``P`` is the prefix, default ``authmd:``). Everything an account owns shares one hash
slot, so every transition on it is one single-slot Lua script that Redis Cluster accepts:

  P{a:ID}:acct            hash: the account (kind, expiry, quotas, note_count, note_seq)
  P{a:ID}:regs            set: its registration ids
  P{a:ID}:reg:RID         hash: one registration (absent field = None)
  P{a:ID}:notes           hash: note id -> "seq:[created_at, text]"
  P{a:ID}:rv:JTI          string: a revoked access token id -> the token's exp
  P{a:ID}:claim:RID       hash: the claim of one registration (version, data: the Claim as JSON)
  P{exp}:accounts         sorted set: temporary account id by expiry (the sweeper's index)
  P{ids}:accounts         sorted set: every account id, all with score 0 (the operator's listing, paged
                          by ZRANGEBYLEX in id order); added right before the account's own write (never
                          an unlisted account; reads skip entries of missing accounts), removed right
                          after its deletion
  P{ids}:indexed          string: set once P{ids}:accounts lists every account (see ``list_accounts``)
  P{lim}:w:KEY            hash: one sliding-window counter (all counters share a slot: limits are
                          checked all-or-nothing across a source's and the global counter)
  Pm:NS:KEY               string: a one-time mark -> its expiry (single key: any slot)
  P{a:ID}:events          stream: the account's outbox, its domain events in commit order (fields id, e:
                          the event as JSON), written by the same script as the change; outlives the
                          account (see ``_outbox.lua``)
  P{a:ID}:events:sent     string: the stream id of the last delivered event (the outbox's cursor)
  P{T}:outboxes           sorted set: ids of accounts with an outbox -> their newest event's ms
  P{T}:pending            sorted set: ids of accounts with undelivered events -> ms
                          ``T`` is a tag in the account's own hash slot (``slot_tag``): one index of each
                          kind per slot, written by the account's scripts, which Cluster accepts since
                          the keys share the slot. A reader walks the 16384 slot indexes (one on a single
                          Redis, where ``T`` is ``o``). An entry whose outbox was reclaimed is dropped
                          by a script in that slot (``drop_outbox``)
  P{a:service}:wh:...     webhooks (app/store/redis/webhooks.py), all in the slot of the service
                          pseudo-account (``app.events.SERVICE``), whose outbox their events go to,
                          written by the same single-slot script (so one Cluster node serves all
                          webhook traffic). The service has no account hash: its outbox persists.
    wh:d:ID               hash: a delivery: ``data`` its record as JSON, endpoint, account, created_at,
                          and the fields scripts change (status, seq, attempts, next_at, leased_by,
                          leased_until), which win over ``data``
    wh:q:EP:ACCOUNT       list: the ids of that queue's pending deliveries, in send order (head first);
                          account ids have no ":", so the pair is unambiguous
    wh:due:EP             sorted set: account id -> when that queue's head may next be leased (its
                          next_at, or its lease's end while leased); only non-empty queues
    wh:seq                string: the counter giving each delivery its seq
    wh:log                sorted set: delivery id by seq (the log, listed newest first); beside it the
                          same by endpoint (wh:log:e:EP), by status (wh:log:s:STATUS) and by both
                          (wh:log:es:STATUS:EP), so a filtered page reads only what it returns
    wh:done               sorted set: delivered or failed delivery id by created_at (what trimming takes)
    wh:ep:EP              hash: an endpoint's state (disabled_at, last_success_at, last_failure_at;
                          absent = None)
    wh:eps                set: the names of endpoints with a state
  P{m}:min:MINUTE         hash: series name -> its total in that minute (minutes since the epoch); TTL
                          COUNT_MINUTES_KEPT minutes, renewed by each write
  P{m}:hour:HOUR          hash: the same per hour (minute // 60); TTL COUNT_HOURS_KEPT hours
  P{audit}:seq, :log      the free-form audit trail of earlier versions (kept, no longer written)
  P{u:ID}:user            hash: a user (email, account id)
  P{u:ID}:owned           set: ids of accounts the user owns, added once the account exists (reads check
                          each account's ``owner`` and drop the ids of deleted accounts)
  Pemail:SHA256           string: lower-cased email -> user id (claimed with SET NX: one owner)
  Plogin:SHA256           string: an OpenID Connect subject (iss, sub) -> user id
  Pdlg:SHA256             hash: the delegation of one provider subject (iss, sub)
  Psess:HASH              string: a browser session -> "expires_at base64(data)" (its TTL counts from the
                          wall clock: ``put_session`` has no ``now``)
  Pcl:ID                  hash: an OAuth client that registered itself (body: its record as JSON,
                          expires_at: moved forward by each use); TTL from the wall clock, as sessions

Correctness comes from the absolute expiry stored in each record and compared with the caller's
``now``; backend TTLs (relative to that ``now``, plus a grace period) only reclaim space.
Writes that span slots (the expiry, listing and owner indexes, the delegation a claim activates) are
issued in order right around the account's own script; a crash between them can at worst leave an
index entry that reads or the sweeper skip or drop, or leave a claimed link's delegation pending. Domain
events never span slots: they are written by the account's own script, with the change. People
(users, emails, logins) are written across slots in an order whose every crash point is safe: first
writer wins on the email and the login, and orphans are unreachable.
Redis must run with ``maxmemory-policy noeviction`` (eviction would silently drop replay marks and
revocations): ``open`` refuses anything else.
"""

from __future__ import annotations

from app.store.redis.base import RedisURL, parse_redis_url, slot_tag
from app.store.redis.claims import RedisClaims
from app.store.redis.clients import RedisClients
from app.store.redis.counters import RedisCounters
from app.store.redis.events import RedisEvents
from app.store.redis.grants import RedisGrants
from app.store.redis.limits import RedisLimits
from app.store.redis.marks import RedisMarks
from app.store.redis.notes import RedisNotes
from app.store.redis.people import RedisPeople
from app.store.redis.webhooks import RedisWebhooks

__all__ = ["RedisStore", "RedisURL", "parse_redis_url", "slot_tag"]


class RedisStore(
    RedisLimits,
    RedisMarks,
    RedisGrants,
    RedisPeople,
    RedisClients,
    RedisClaims,
    RedisNotes,
    RedisEvents,
    RedisWebhooks,
    RedisCounters,
):
    """Every port on one Redis or Redis Cluster: each concern's module adds its methods to the shared base."""
