"""Events on SQLite: reading the one events table (kept for good) and its delivered flags."""

from __future__ import annotations

from app import events as ev
from app.events import Event
from app.store.sqlite.base import SQLiteBase
from app.store.sqlite.commit import writes


class SQLiteEvents(SQLiteBase):
    def _events(self, after: str, limit: int) -> list[Event]:
        rows = self.conn.execute("SELECT body FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        return [ev.decode(r[0]) for r in rows.fetchall()]

    async def events(self, after: str = "", limit: int = 100) -> list[Event]:
        return await self._run(self._events, after, limit)

    def _account_events(self, account_id: str, limit: int) -> list[Event]:
        rows = self.conn.execute(
            "SELECT body FROM events WHERE account_id = ? ORDER BY seq DESC LIMIT ?", (account_id, limit)
        )
        return [ev.decode(r[0]) for r in reversed(rows.fetchall())]

    async def account_events(self, account_id: str, limit: int = 100) -> list[Event]:
        return await self._run(self._account_events, account_id, limit)

    def _outboxes_with_pending(self, limit: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT account_id FROM events WHERE delivered = 0 GROUP BY account_id ORDER BY min(seq) LIMIT ?",
            (limit,),
        )
        return [r[0] for r in rows.fetchall()]

    async def outboxes_with_pending(self, limit: int = 100) -> list[str]:
        return await self._run(self._outboxes_with_pending, limit)

    def _read_outbox(self, account_id: str, limit: int) -> list[Event]:
        rows = self.conn.execute(
            "SELECT body FROM events WHERE account_id = ? AND delivered = 0 ORDER BY seq LIMIT ?", (account_id, limit)
        )
        return [ev.decode(r[0]) for r in rows.fetchall()]

    async def read_outbox(self, account_id: str, limit: int = 100) -> list[Event]:
        return await self._run(self._read_outbox, account_id, limit)

    @writes
    def _mark_delivered(self, account_id: str, through: str) -> bool:
        with self._write() as conn:
            row = conn.execute(
                "SELECT seq FROM events WHERE id = ? AND account_id = ? AND delivered = 0", (through, account_id)
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                "UPDATE events SET delivered = 1 WHERE account_id = ? AND delivered = 0 AND seq <= ?",
                (account_id, row[0]),
            )
            return True

    async def mark_delivered(self, account_id: str, through: str) -> bool:
        return await self._run(self._mark_delivered, account_id, through)
