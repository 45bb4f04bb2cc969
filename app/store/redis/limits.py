"""Limits on Redis: sliding-window counters in one slot, all-or-nothing in one script."""

from __future__ import annotations

from collections.abc import Sequence

from app.store.port import WindowHit, WindowResult
from app.store.redis.base import RedisBase


class RedisLimits(RedisBase):
    async def hit_windows(self, hits: Sequence[WindowHit], now: float, window: float) -> list[WindowResult]:
        return await self._count_windows(hits, now, window)
