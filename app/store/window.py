"""Sliding-window counter math (the two-bucket estimate), shared by adapters that compute in Python.

A counter keeps the current fixed bucket's count and the previous bucket's count; the estimate
weights the previous bucket by how much of it still overlaps the sliding window. O(1) memory per key.
"""

from __future__ import annotations

import math


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
