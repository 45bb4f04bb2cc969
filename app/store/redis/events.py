"""Events on Redis: reading the per-account outbox streams through the per-slot indexes."""

from __future__ import annotations

import asyncio
import functools
from importlib import resources
from typing import Any

import redis.exceptions as rx

from app import events as ev
from app.errors import StoreUnavailable
from app.events import Event
from app.store.port import OUTBOX_MAXLEN
from app.store.redis.base import UNAVAILABLE, RedisBase, slot_tag

_WALK = (resources.files("app.store") / "lua" / "walk_index.lua").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=16)
def _slot_indexes(prefix: str, kind: str) -> list[str]:
    """Every slot's index key on a cluster, slot by slot."""
    return [f"{prefix}{{{slot_tag(slot)}}}:{kind}" for slot in range(16384)]


class RedisEvents(RedisBase):
    async def _walk_index(self, kind: str, low: float, limit: int | None) -> list[tuple[str, float]]:
        """(account id, score) of every entry of the outbox indexes (``kind``: outboxes or pending) scored
        at least ``low``, lowest first. A single Redis has one index. A cluster has one per hash slot
        (each written in its accounts' scripts): one script per node reads the indexes of the slots it
        serves; while a slot moves, or on a Redis before 7.0, one pipelined read per slot instead."""
        async with self._connection():
            try:
                if not self._cluster:
                    key = f"{self.prefix}{{o}}:{kind}"
                    page = await self._client.zrangebyscore(key, low, "+inf", 0, limit or -1, withscores=True)
                    return [(member, score) for member, score in page]
                try:
                    pages = await self._walk_nodes(kind, low, limit)
                except rx.ResponseError:
                    pages = await self._walk_slots(kind, low, limit)
            except UNAVAILABLE as exc:
                raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        found = sorted((score, account_id) for page in pages for account_id, score in page)
        return [(account_id, score) for score, account_id in found[:limit]]

    async def _walk_nodes(self, kind: str, low: float, limit: int | None) -> list[list[tuple[str, float]]]:
        """One script per primary, over the slots the client's map gives it (three round trips, not
        16,384 reads: a poller's cost); a stale map fails the script of the node that lost a slot."""
        nodes: dict[str, tuple[Any, list[str]]] = {}
        for slot, key in enumerate(_slot_indexes(self.prefix, kind)):
            node = self._client.nodes_manager.get_node_from_slot(slot)
            nodes.setdefault(node.name, (node, []))[1].append(key)
        replies = await asyncio.gather(
            *(
                self._client.execute_command("EVAL", _WALK, 0, low, limit or -1, *keys, target_nodes=node)
                for node, keys in nodes.values()
            )
        )
        return [[(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)] for flat in replies]

    async def _walk_slots(self, kind: str, low: float, limit: int | None) -> list[list[tuple[str, float]]]:
        pipe = self._client.pipeline()
        for key in _slot_indexes(self.prefix, kind):
            pipe.zrangebyscore(key, low, "+inf", start=0, num=limit or -1, withscores=True)
        pages: list[list[tuple[str, float]]] = await pipe.execute()
        return pages

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

    async def account_events(self, account_id: str, limit: int = 100) -> list[Event]:
        rows = await self._do("xrevrange", self._a(account_id, "events"), "+", "-", count=limit)
        return [ev.decode(fields["e"]) for _, fields in reversed(rows)]

    async def read_outbox(self, account_id: str, limit: int = 100) -> list[Event]:
        rows = await self._call("read_outbox", [self._a(account_id, "events")], [limit])
        return [ev.decode(body) for body in rows]

    async def mark_delivered(self, account_id: str, through: str) -> bool:
        stream, _, pending = self._outbox_keys(account_id)
        return bool(await self._call("mark_delivered", [stream, pending], [account_id, through, OUTBOX_MAXLEN]))
