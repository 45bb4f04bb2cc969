"""Events on Redis: reading the per-account outbox streams through the per-slot indexes."""

from __future__ import annotations

from app import events as ev
from app.errors import StoreUnavailable
from app.events import Event
from app.store.port import OUTBOX_MAXLEN
from app.store.redis.base import UNAVAILABLE, RedisBase, slot_tag


class RedisEvents(RedisBase):
    def _index_keys(self, kind: str) -> list[str]:
        """Every slot's index of outboxes (``kind``: outboxes or pending); one key on a single Redis."""
        if not self._cluster:
            return [f"{self.prefix}{{o}}:{kind}"]
        return [f"{self.prefix}{{{slot_tag(slot)}}}:{kind}" for slot in range(16384)]

    async def _walk_index(self, kind: str, low: float, limit: int | None) -> list[tuple[str, float]]:
        """(account id, score) of every index entry scored at least ``low``, lowest first: one pipelined
        round trip per node (16384 small reads on a cluster: a poller's cost, not a request's)."""
        keys = self._index_keys(kind)
        pipe = self._client.pipeline(transaction=False) if not self._cluster else self._client.pipeline()
        for key in keys:
            pipe.zrangebyscore(key, low, "+inf", start=0, num=limit or -1, withscores=True)
        async with self._connection():
            try:
                pages: list[list[tuple[str, float]]] = await pipe.execute()
            except UNAVAILABLE as exc:
                raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        found = sorted((score, account_id) for page in pages for account_id, score in page)
        return [(account_id, score) for score, account_id in found[:limit]]

    async def _outbox(self, account_id: str) -> list[Event]:
        rows = await self._do("xrange", self._a(account_id, "events"), "-", "+")
        if not rows:
            await self._call("drop_outbox", self._outbox_keys(account_id), [account_id])
        return [ev.decode(fields["e"]) for _, fields in rows]

    async def events(self, after: str = "", limit: int = 100) -> list[Event]:
        # Each outbox is indexed by its newest event's time: only those with an event at or after the
        # cursor's millisecond are read; their events after the cursor are merged by id.
        low = ev.ms_of(after) if after else 0
        found: list[Event] = []
        for account_id, _ in await self._walk_index("outboxes", low, None):
            found += [e for e in await self._outbox(account_id) if e.id > after]
        return sorted(found, key=lambda e: e.id)[:limit]

    async def outboxes_with_pending(self, limit: int = 100) -> list[str]:
        return [account_id for account_id, _ in await self._walk_index("pending", 0, limit)]

    async def read_outbox(self, account_id: str, limit: int = 100) -> list[Event]:
        rows = await self._call("read_outbox", [self._a(account_id, "events")], [limit])
        return [ev.decode(body) for body in rows]

    async def mark_delivered(self, account_id: str, through: str) -> bool:
        stream, _, pending = self._outbox_keys(account_id)
        return bool(await self._call("mark_delivered", [stream, pending], [account_id, through, OUTBOX_MAXLEN]))
