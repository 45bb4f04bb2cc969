"""Notes on SQLite: the demo resource; a note and the account's count change in one transaction."""

from __future__ import annotations

import sqlite3

from app.store.port import AddNoteOutcome, Note
from app.store.sqlite.base import _LIVE, SQLiteBase
from app.store.sqlite.commit import writes


def read_notes(conn: sqlite3.Connection, account_id: str, now: float) -> list[Note]:
    """The live account's notes in the order they were added (also read with a token check)."""
    rows = conn.execute(
        "SELECT n.id, n.text, n.created_at FROM notes n JOIN accounts a ON a.id = n.account_id "
        "WHERE n.account_id = ? AND (a.expires_at IS NULL OR a.expires_at > ?) ORDER BY n.seq",
        (account_id, now),
    ).fetchall()
    return [Note(id=r[0], account_id=account_id, text=r[1], created_at=r[2]) for r in rows]


class SQLiteNotes(SQLiteBase):
    @writes
    def _add_note(self, note: Note, now: float) -> AddNoteOutcome:
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE accounts SET note_count = note_count + 1 WHERE id = ? AND {_LIVE} "
                "AND note_count < quota_notes",
                (note.account_id, now),
            )
            if cur.rowcount != 1:
                live = conn.execute(f"SELECT 1 FROM accounts WHERE id = ? AND {_LIVE}", (note.account_id, now))
                return "quota_exceeded" if live.fetchone() else "account_gone"
            conn.execute(
                "INSERT INTO notes (account_id, id, text, created_at) VALUES (?, ?, ?, ?)",
                (note.account_id, note.id, note.text, note.created_at),
            )
            return "created"

    async def add_note(self, note: Note, now: float) -> AddNoteOutcome:
        return await self._run(self._add_note, note, now)

    def _list_notes(self, account_id: str, now: float) -> list[Note]:
        return read_notes(self.conn, account_id, now)

    async def list_notes(self, account_id: str, now: float) -> list[Note]:
        return await self._run(self._list_notes, account_id, now)

    def _get_note(self, account_id: str, note_id: str, now: float) -> Note | None:
        row = self.conn.execute(
            "SELECT n.text, n.created_at FROM notes n JOIN accounts a ON a.id = n.account_id "
            "WHERE n.account_id = ? AND n.id = ? AND (a.expires_at IS NULL OR a.expires_at > ?)",
            (account_id, note_id, now),
        ).fetchone()
        return Note(id=note_id, account_id=account_id, text=row[0], created_at=row[1]) if row else None

    async def get_note(self, account_id: str, note_id: str, now: float) -> Note | None:
        return await self._run(self._get_note, account_id, note_id, now)

    @writes
    def _delete_note(self, account_id: str, note_id: str, now: float) -> bool:
        with self._write() as conn:
            live = conn.execute(f"SELECT 1 FROM accounts WHERE id = ? AND {_LIVE}", (account_id, now)).fetchone()
            if not live:
                return False
            cur = conn.execute("DELETE FROM notes WHERE account_id = ? AND id = ?", (account_id, note_id))
            if cur.rowcount != 1:
                return False
            conn.execute("UPDATE accounts SET note_count = note_count - 1 WHERE id = ?", (account_id,))
            return True

    async def delete_note(self, account_id: str, note_id: str, now: float) -> bool:
        return await self._run(self._delete_note, account_id, note_id, now)
