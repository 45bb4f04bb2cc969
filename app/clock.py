"""Every expiry decision reads an injected clock, so tests move time instead of sleeping."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def rfc3339(ts: float) -> str:
    """UTC RFC 3339 with a `Z`: JavaScript's Date reads an offset-less time as local (spec/protocol.md)."""
    return _rfc3339(int(ts))


@functools.lru_cache(maxsize=1024)
def _rfc3339(seconds: int) -> str:
    # Cached: the times a busy second writes (its expiries, its own time) repeat from request to request.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
