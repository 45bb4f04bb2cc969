"""OAuth clients that registered themselves (RFC 7591) on SQLite: the record as JSON, its expiry a column."""

from __future__ import annotations

import msgspec

from app.store.port import ClientRecord
from app.store.sqlite.base import SQLiteBase
from app.store.sqlite.commit import writes

_JSON = msgspec.json.Encoder()


class SQLiteClients(SQLiteBase):
    @writes
    def _put_client(self, client: ClientRecord) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO clients (id, body, expires_at) VALUES (?, ?, ?)",
                (client.client_id, _JSON.encode(client).decode(), client.expires_at),
            )

    async def put_client(self, client: ClientRecord) -> None:
        await self._run(self._put_client, client)

    def _get_client(self, client_id: str, now: float) -> ClientRecord | None:
        row = self.conn.execute(
            "SELECT body, expires_at FROM clients WHERE id = ? AND expires_at > ?", (client_id, now)
        ).fetchone()
        if row is None:
            return None
        return msgspec.structs.replace(msgspec.json.decode(row[0], type=ClientRecord), expires_at=row[1])

    async def get_client(self, client_id: str, now: float) -> ClientRecord | None:
        return await self._run(self._get_client, client_id, now)

    @writes
    def _touch_client(self, client_id: str, expires_at: int, now: float) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE clients SET expires_at = max(expires_at, ?) WHERE id = ? AND expires_at > ?",
                (expires_at, client_id, now),
            )
            return cur.rowcount == 1

    async def touch_client(self, client_id: str, expires_at: int, now: float) -> bool:
        return await self._run(self._touch_client, client_id, expires_at, now)
