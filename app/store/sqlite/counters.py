"""Counters on SQLite: per-minute and per-hour totals (tables count_minutes, count_hours), and the count
of live temporary accounts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

from app.errors import StoreUnavailable
from app.store.counts import count_read
from app.store.port import COUNT_HOURS_KEPT, COUNT_MINUTES_KEPT
from app.store.sqlite.base import SQLiteBase
from app.store.sqlite.commit import writes

TRIM_BATCH = 10_000  # about 20 ms of deleting


class SQLiteCounters(SQLiteBase):
    @writes
    def _add_counts(self, counts: Mapping[tuple[str, int], int]) -> None:
        hours: dict[tuple[str, int], int] = {}
        for (name, minute), n in counts.items():
            hours[(name, minute // 60)] = hours.get((name, minute // 60), 0) + n
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO count_minutes (name, minute, n) VALUES (?, ?, ?) "
                "ON CONFLICT (name, minute) DO UPDATE SET n = n + excluded.n",
                [(name, minute, n) for (name, minute), n in counts.items()],
            )
            conn.executemany(
                "INSERT INTO count_hours (name, hour, n) VALUES (?, ?, ?) "
                "ON CONFLICT (name, hour) DO UPDATE SET n = n + excluded.n",
                [(name, hour, n) for (name, hour), n in hours.items()],
            )

    async def add_counts(self, counts: Mapping[tuple[str, int], int]) -> None:
        if counts:
            await self._run(self._add_counts, dict(counts))

    def _read_counts(self, names: Sequence[str], start: int, end: int, step: int) -> dict[str, list[int]]:
        plan = count_read(names, start, end, step)
        table, column = ("count_hours", "hour") if plan.hours else ("count_minutes", "minute")
        out = {name: [0] * plan.buckets for name in names}
        # One range of the primary key per name: the rows read are at most the buckets asked for.
        for name in out:
            rows = self.conn.execute(
                f"SELECT ({column} - ?) / ?, sum(n) FROM {table} WHERE name = ? AND {column} >= ? AND {column} < ? "
                "GROUP BY 1",
                (plan.first, plan.step, name, plan.first, plan.end),
            )
            for bucket, n in rows:
                out[name][bucket] = n
        return out

    async def read_counts(self, names: Sequence[str], start: int, end: int, step: int) -> dict[str, list[int]]:
        count_read(names, start, end, step)  # a bad request is a ValueError, never a 503
        return await self._run(self._read_counts, list(names), start, end, step)

    @writes
    def _trim_counts(self, now: float) -> int:
        minute = int(now // 60)
        gone = 0
        with self._write() as conn:
            for table, column, before in (
                ("count_minutes", "minute", minute - COUNT_MINUTES_KEPT),
                ("count_hours", "hour", minute // 60 - COUNT_HOURS_KEPT),
            ):
                gone += conn.execute(
                    f"DELETE FROM {table} WHERE (name, {column}) IN "
                    f"(SELECT name, {column} FROM {table} WHERE {column} < ? ORDER BY {column} LIMIT ?)",
                    (before, TRIM_BATCH),
                ).rowcount
        return gone

    async def trim_counts(self, now: float) -> int:
        """At most TRIM_BATCH rows of each table a call: a backlog (totals that aged out while the server
        was stopped: up to COUNT_MINUTES_KEPT rows a series) drains over the sweeper's next passes
        instead of holding the event loop (measured: 288 000 rows in one go took 0.5 s)."""
        return await self._run(self._trim_counts, now)

    async def count_temporary(self, now: float) -> int:
        """Counted on the sweeper's partial index alone (accounts_by_expiry covers kind since migration 7; a
        claim makes an account persistent, which takes it out). Counting walks the index entry by entry, so
        it runs in a thread on a read-only connection of its own: the event loop goes on meanwhile, and in
        WAL mode a reader never holds up a writer."""
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        try:
            return await asyncio.to_thread(_count_temporary, self.path, now, self._busy_timeout_ms)
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc


def _count_temporary(path: Path, now: float, busy_timeout_ms: int) -> int:
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=busy_timeout_ms / 1000)
    try:
        row = conn.execute("SELECT count(*) FROM accounts WHERE kind = 'temporary' AND expires_at > ?", (now,))
        return int(row.fetchone()[0])
    finally:
        conn.close()
