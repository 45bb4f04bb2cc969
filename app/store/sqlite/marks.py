"""Marks on SQLite: one-time marks and revoked token ids (one table; a lapsed mark counts as absent)."""

from __future__ import annotations

from app.store.sqlite.base import SQLiteBase
from app.store.sqlite.commit import writes


class SQLiteMarks(SQLiteBase):
    @writes
    def _consume_once(self, namespace: str, key: str, expires_at: float, now: float) -> bool:
        with self._write() as conn:
            # A lapsed mark counts as absent: replace it (first writer of the new period wins).
            cur = conn.execute(
                "INSERT INTO marks (namespace, key, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE SET expires_at = excluded.expires_at "
                "WHERE marks.expires_at <= ?",
                (namespace, key, expires_at, now),
            )
            return cur.rowcount == 1

    async def consume_once(self, namespace: str, key: str, expires_at: float, now: float) -> bool:
        return await self._run(self._consume_once, namespace, key, expires_at, now)

    async def revoke_token(self, account_id: str, token_id: str, expires_at: float, now: float) -> bool:
        # Token ids are unique across accounts; the account only addresses the mark on Redis.
        return await self._run(self._consume_once, "revoked", token_id, expires_at, now)
