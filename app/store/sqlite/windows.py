"""The window counters one group-commit batch reads and moves (app/store/sqlite/commit.py).

Every registration counts in two windows (its source's and the global one). Read and upserted per
registration, that was two SELECTs and two upserts on the same rows, batch after batch: ~15% of a
registration's time on SQLite (measured, docs/performance.md). Inside a batch the write lock is held,
so a row read once stays true for the whole batch: each key is read at its first use and written back
once, just before the batch commits (and so in the same transaction: a failed commit keeps none). A
step that fails gives back what it moved, as its savepoint gives back its rows.
"""

from __future__ import annotations

import sqlite3

State = tuple[int, int, int]  # (bucket, count, prev), as stored


class WindowRows:
    def __init__(self) -> None:
        self._rows: dict[str, State] = {}
        self._moved: dict[str, float] = {}  # key -> the expires_at to write
        self._undo: dict[str, tuple[State | None, float | None]] = {}

    def read(self, conn: sqlite3.Connection, key: str, now: float) -> State:
        state = self._rows.get(key)
        if state is None:
            row = conn.execute(
                "SELECT bucket, count, prev FROM windows WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            state = self._rows[key] = row or (0, 0, 0)
        return state

    def move(self, key: str, state: State, expires_at: float) -> None:
        if key not in self._undo:
            self._undo[key] = (self._rows.get(key), self._moved.get(key))
        self._rows[key] = state
        self._moved[key] = expires_at

    def begin_step(self) -> None:
        self._undo = {}

    def undo_step(self) -> None:
        for key, (state, expires_at) in self._undo.items():
            if state is None:
                self._rows.pop(key, None)
            else:
                self._rows[key] = state
            if expires_at is None:
                self._moved.pop(key, None)
            else:
                self._moved[key] = expires_at
        self._undo = {}

    def flush(self, conn: sqlite3.Connection) -> None:
        """Write back what the batch moved, inside its transaction."""
        if self._moved:
            conn.executemany(
                "INSERT INTO windows (key, bucket, count, prev, expires_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET bucket = excluded.bucket, count = excluded.count, "
                "prev = excluded.prev, expires_at = excluded.expires_at",
                [(key, *self._rows[key], expires_at) for key, expires_at in self._moved.items()],
            )

    def clear(self) -> None:
        self._rows, self._moved, self._undo = {}, {}, {}
