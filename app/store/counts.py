"""Checking a ``Counters.read_counts`` request, the same for every adapter (app/store/port.py Counters)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from app.store.port import COUNT_HOURS_KEPT, COUNT_MINUTES_KEPT

# A read asks for at most this many series: Redis takes them as one script's arguments.
COUNT_NAMES_READ = 256


class CountRead(NamedTuple):
    """A checked ``read_counts`` request in the units of the totals it reads: ``hours`` (else minutes);
    buckets [first, first + step), [first + step, ...) up to ``end``."""

    hours: bool
    first: int
    end: int
    step: int
    buckets: int


def count_read(names: Sequence[str], start: int, end: int, step: int) -> CountRead:
    """``read_counts``'s arguments checked (ValueError); a read covers at most the span kept, so its
    cost stays bounded whoever asks."""
    if isinstance(names, str) or len(names) > COUNT_NAMES_READ or not all(isinstance(n, str) for n in names):
        raise ValueError(f"names: a sequence of at most {COUNT_NAMES_READ} series names")
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (start, end, step)):
        raise ValueError("start, end and step are whole numbers of minutes")
    if step <= 0 or start < 0 or end <= start or (end - start) % step:
        raise ValueError("need 0 <= start < end and a positive step that divides end - start")
    if step >= 60 and (step % 60 or start % 60 or end % 60):
        raise ValueError("a step of an hour or more is whole hours, from and to whole hours")
    hours = step >= 60
    unit = 60 if hours else 1
    if (end - start) // unit > (COUNT_HOURS_KEPT if hours else COUNT_MINUTES_KEPT):
        raise ValueError("the span is longer than the totals are kept")
    return CountRead(hours, start // unit, end // unit, step // unit, (end - start) // step)
