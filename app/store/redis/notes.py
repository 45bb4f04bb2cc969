"""Notes on Redis: the demo resource; a note and the account's count change in one script."""

from __future__ import annotations

import json

import msgspec

from app.store.port import AddNoteOutcome, Note
from app.store.redis.base import RedisBase


def notes_of(account_id: str, stored: dict[str, str]) -> list[Note]:
    """Notes from the notes hash as a script returns it, in the order they were added."""
    notes = []
    # cjson writes an empty table as {}; a table of notes as {id: value}
    for nid, value in stored.items():
        seq, _, payload = value.partition(":")
        created_at, text = json.loads(payload)
        notes.append((int(seq), Note(id=nid, account_id=account_id, text=text, created_at=created_at)))
    return [n for _, n in sorted(notes, key=lambda pair: pair[0])]


class RedisNotes(RedisBase):
    async def add_note(self, note: Note, now: float) -> AddNoteOutcome:
        keys = [self._a(note.account_id, "acct"), self._a(note.account_id, "notes")]
        payload = json.dumps([note.created_at, note.text])
        outcome: AddNoteOutcome = await self._call("add_note", keys, [repr(float(now)), note.id, payload])
        return outcome

    async def _read_notes(self, account_id: str, note_id: str, now: float) -> list[Note]:
        keys = [self._a(account_id, "acct"), self._a(account_id, "notes")]
        reply = await self._call("read_notes", keys, [note_id])
        if reply is None:
            return []
        row = msgspec.json.decode(reply)
        if row["e"] != "" and float(row["e"]) <= now:
            return []
        return notes_of(account_id, row["n"])

    async def list_notes(self, account_id: str, now: float) -> list[Note]:
        return await self._read_notes(account_id, "", now)

    async def get_note(self, account_id: str, note_id: str, now: float) -> Note | None:
        if not note_id:
            return None
        found = await self._read_notes(account_id, note_id, now)
        return found[0] if found else None

    async def delete_note(self, account_id: str, note_id: str, now: float) -> bool:
        keys = [self._a(account_id, "acct"), self._a(account_id, "notes")]
        return bool(await self._call("delete_note", keys, [repr(float(now)), note_id]))
