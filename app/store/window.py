"""Sliding-window counter math (the two-bucket estimate), shared by adapters that compute in Python,
and ``LocalWindows``, the same counters in one worker's memory.

A counter keeps the current fixed bucket's count and the previous bucket's count; the estimate
weights the previous bucket by how much of it still overlaps the sliding window. O(1) memory per key.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from app.store.port import WindowResult


def roll(bucket: int, count: int, prev: int, now: float, window: float) -> tuple[int, int, int]:
    """Move a stored (bucket, count, prev) to the bucket that contains ``now``."""
    current = math.floor(now / window)
    if bucket == current:
        return current, count, prev
    if bucket == current - 1:
        return current, 0, count
    return current, 0, 0


def estimate(bucket: int, count: int, prev: int, now: float, window: float) -> float:
    frac = now / window - bucket
    return prev * (1.0 - frac) + count


def retry_after(bucket: int, count: int, prev: int, now: float, window: float, limit: int) -> float:
    """Seconds until one more hit fits under ``limit`` (state already rolled to ``now``)."""
    if limit <= 0:
        return window
    frac = now / window - bucket
    room = limit - 1 - count
    if room >= 0 and prev > 0:
        needed = 1.0 - room / prev  # prev * (1 - f) <= room
        if needed < 1.0:
            return max(0.0, (needed - frac) * window)
    # Wait for the next bucket, where this bucket's count becomes the decaying previous one.
    needed_next = max(0.0, 1.0 - (limit - 1) / count) if count > 0 else 0.0
    return (1.0 - frac) * window + needed_next * window


class LocalWindows:
    """Sliding-window counters in this worker's memory (the store's two-bucket math), for counting what
    we refuse: a refusal must cost no shared write, and only bounds what one worker spends on one
    source. At most ``max_keys`` counters; the least recently touched one is forgotten first."""

    def __init__(self, window: float, max_keys: int = 65_536) -> None:
        self.window = window
        self.max_keys = max_keys
        self._state: OrderedDict[str, tuple[int, int, int]] = OrderedDict()

    def _rolled(self, key: str, now: float) -> tuple[int, int, int]:
        bucket, count, prev = self._state.get(key, (0, 0, 0))
        return roll(bucket, count, prev, now, self.window)

    def reserve(self, key: str, limit: int, now: float) -> WindowResult:
        """Count one more for ``key`` if it fits under ``limit`` (nothing counted otherwise). Taken before
        the work whose outcome decides, and given back by ``refund`` if it was not a refusal after all:
        requests that arrive together cannot all find the same last place free (no await in between)."""
        bucket, count, prev = self._rolled(key, now)
        est = estimate(bucket, count, prev, now, self.window)
        if est + 1 > limit:
            wait = retry_after(bucket, count, prev, now, self.window, limit)
            return WindowResult(count=est, allowed=False, retry_after=wait)
        self._state[key] = (bucket, count + 1, prev)
        self._state.move_to_end(key)
        if len(self._state) > self.max_keys:
            self._state.popitem(last=False)
        return WindowResult(count=est + 1, allowed=True, retry_after=0.0)

    def refund(self, key: str, now: float) -> None:
        """Give back a place ``reserve`` took (from the previous bucket if the window has moved on)."""
        if key not in self._state:
            return
        bucket, count, prev = self._rolled(key, now)
        if count:
            count -= 1
        elif prev:
            prev -= 1
        self._state[key] = (bucket, count, prev)
