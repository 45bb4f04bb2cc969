"""Counters on Redis: per-minute and per-hour totals, one hash per minute (``P{m}:min:MINUTE``) and per
hour (``P{m}:hour:HOUR``), field = series name. All of them share the ``{m}`` slot, so a flush is one
atomic script on a Cluster too (one node holds them: a few writes every few seconds per process)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.store.counts import count_read
from app.store.port import COUNT_HOURS_KEPT, COUNT_MINUTES_KEPT
from app.store.redis.base import RedisBase

# Keys one read script takes: with 40 series, about 6 ms of Redis's time (a day by 5 minutes read in
# one script held it 36 ms).
READ_KEYS = 240


class RedisCounters(RedisBase):
    def _count_key(self, unit: str, n: int) -> str:
        return f"{self.prefix}{{m}}:{unit}:{n}"

    async def add_counts(self, counts: Mapping[tuple[str, int], int]) -> None:
        minutes: dict[int, dict[str, int]] = {}
        hours: dict[int, dict[str, int]] = {}
        for (name, minute), n in counts.items():
            for buckets, at in ((minutes, minute), (hours, minute // 60)):
                fields = buckets.setdefault(at, {})
                fields[name] = fields.get(name, 0) + n
        if not minutes:
            return
        keys = [self._count_key("min", m) for m in minutes] + [self._count_key("hour", h) for h in hours]
        args: list[object] = [len(minutes), COUNT_MINUTES_KEPT * 60, COUNT_HOURS_KEPT * 3600]
        for fields in (*minutes.values(), *hours.values()):
            args.append(len(fields))
            for name, n in fields.items():
                args += [name, n]
        await self._call("add_counts", keys, args)

    async def read_counts(self, names: Sequence[str], start: int, end: int, step: int) -> dict[str, list[int]]:
        plan = count_read(names, start, end, step)
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        unit = "hour" if plan.hours else "min"
        out: dict[str, list[int]] = {name: [] for name in names}
        # Whole buckets of at most READ_KEYS keys a script: a script holds Redis for its whole run.
        chunk = max(1, READ_KEYS // plan.step) * plan.step
        for first in range(plan.first, plan.end, chunk):
            keys = [self._count_key(unit, n) for n in range(first, min(first + chunk, plan.end))]
            sums = await self._call("read_counts", keys, [plan.step, *names])
            buckets = len(keys) // plan.step
            for i, name in enumerate(names):
                out[name] += [int(v) for v in sums[i * buckets : (i + 1) * buckets]]
        return out

    async def trim_counts(self, now: float) -> int:
        """Nothing to do: each total's key carries a TTL (its retention), so Redis drops them itself; 0."""
        return 0

    async def count_temporary(self, now: float) -> int:
        """ZCOUNT over the sweeper's index (``P{exp}:accounts``: temporary account id by expiry), from just
        after ``now``; a claim takes the account out of it. The index is written across slots around the
        account's own script (see the package docstring), so a crash in between, or a creation that
        failed after its index entry, can leave an entry without a live temporary account: counted until
        its expiry passes, never longer (the gauge may run high by those, briefly). Exact would mean
        reading every account: this costs O(log n)."""
        return int(await self._do("zcount", self._index, f"({now!r}", "+inf"))
