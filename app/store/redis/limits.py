"""Limits on Redis: sliding-window counters in one slot, all-or-nothing in one script."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from app.store.port import WindowHit, WindowResult
from app.store.redis.base import GRACE_MS, RedisBase


class RedisLimits(RedisBase):
    async def hit_windows(self, hits: Sequence[WindowHit], now: float, window: float) -> list[WindowResult]:
        keys = [f"{self.prefix}{{lim}}:w:{h.key}" for h in hits]
        args: list[Any] = [repr(float(now)), repr(float(window)), GRACE_MS]
        for h in hits:
            args += ["" if h.limit is None else h.limit, 1 if h.increment else 0]
        rows = msgspec.json.decode(await self._call("hit_windows", keys, args))
        return [WindowResult(count=float(c), allowed=a == "1", retry_after=float(r)) for a, c, r in rows]
