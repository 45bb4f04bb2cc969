"""Limits on SQLite: sliding-window counters, all-or-nothing in one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from app.store import window as win
from app.store.port import WindowHit, WindowResult
from app.store.sqlite.base import SQLiteBase
from app.store.sqlite.commit import writes
from app.store.sqlite.windows import WindowRows


def count_windows(
    conn: sqlite3.Connection, hits: Sequence[WindowHit], now: float, window: float, rows: WindowRows | None
) -> list[WindowResult]:
    """``hit_windows`` inside the caller's transaction: all or nothing (a refusal moves no counter).
    ``rows``: the batch's counters when the caller runs in a group commit, else None (read and write
    the table now)."""
    states = []
    for hit in hits:
        if rows is not None:
            bucket, count, prev = rows.read(conn, hit.key, now)
        else:
            row = conn.execute(
                "SELECT bucket, count, prev FROM windows WHERE key = ? AND expires_at > ?", (hit.key, now)
            ).fetchone()
            bucket, count, prev = row or (0, 0, 0)
        states.append(win.roll(bucket, count, prev, now, window))
    estimates = [win.estimate(*state, now, window) for state in states]
    refused = [hit.limit is not None and est + 1 > hit.limit for hit, est in zip(hits, estimates, strict=True)]
    if any(refused):  # all-or-nothing: no counter moves
        return [
            WindowResult(
                count=est,
                allowed=not no,
                retry_after=win.retry_after(*state, now, window, hit.limit) if no and hit.limit is not None else 0.0,
            )
            for hit, state, est, no in zip(hits, states, estimates, refused, strict=True)
        ]
    for hit, (bucket, count, prev) in zip(hits, states, strict=True):
        if hit.increment and rows is not None:
            rows.move(hit.key, (bucket, count + 1, prev), (bucket + 2) * window)
        elif hit.increment:
            conn.execute(
                "INSERT INTO windows (key, bucket, count, prev, expires_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET bucket = excluded.bucket, count = excluded.count, "
                "prev = excluded.prev, expires_at = excluded.expires_at",
                (hit.key, bucket, count + 1, prev, (bucket + 2) * window),
            )
    return [
        WindowResult(count=est + hit.increment, allowed=True, retry_after=0.0)
        for hit, est in zip(hits, estimates, strict=True)
    ]


class SQLiteLimits(SQLiteBase):
    @writes
    def _hit_windows(self, hits: Sequence[WindowHit], now: float, window: float) -> list[WindowResult]:
        with self._write() as conn:
            return count_windows(conn, hits, now, window, self._batch_windows())

    async def hit_windows(self, hits: Sequence[WindowHit], now: float, window: float) -> list[WindowResult]:
        return await self._run(self._hit_windows, list(hits), now, window)
