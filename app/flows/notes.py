"""The demo protected resource: notes an account owns, within its quotas."""

from __future__ import annotations

from app.clock import rfc3339
from app.context import Context
from app.endpoints import CLAIM
from app.errors import AuthError
from app.flows.use import Principal
from app.store.port import Note
from app.tokens import new_id
from app.wire import NoteList, NoteView


def view(note: Note) -> NoteView:
    return NoteView(id=note.id, text=note.text, created_at=rfc3339(note.created_at))


def _quota_hint(ctx: Context, principal: Principal) -> str:
    if principal.account.kind == "temporary":
        return f"Ask a human to claim this account (claim endpoint {ctx.endpoints.url(CLAIM)}) to lift the quota."
    return "Delete notes you no longer need."


async def create(ctx: Context, principal: Principal, text: str) -> NoteView:
    account = principal.account
    size = len(text.encode("utf-8"))
    if size > account.quota_note_bytes:
        raise AuthError(
            "quota_exceeded",
            f"a note may hold at most {account.quota_note_bytes} bytes (this one has {size})",
            _quota_hint(ctx, principal),
        )
    now = ctx.clock.now()
    note = Note(id=new_id("note", 12), account_id=account.id, text=text, created_at=int(now))
    outcome = await ctx.store.add_note(note, now)
    if outcome == "quota_exceeded":
        raise AuthError(
            "quota_exceeded",
            f"this account may hold at most {account.quota_notes} notes",
            _quota_hint(ctx, principal),
        )
    if outcome == "account_gone":
        raise AuthError("invalid_token", "the account behind this token has expired")
    return view(note)


async def list_all(ctx: Context, principal: Principal) -> NoteList:
    notes = principal.notes
    if notes is None:
        notes = await ctx.store.list_notes(principal.account.id, ctx.clock.now())
    return NoteList(notes=[view(n) for n in notes], count=len(notes), limit=principal.account.quota_notes)


async def get_one(ctx: Context, principal: Principal, note_id: str) -> NoteView:
    note = await ctx.store.get_note(principal.account.id, note_id, ctx.clock.now())
    if note is None:
        raise AuthError("not_found", "no such note in this account")
    return view(note)


async def delete(ctx: Context, principal: Principal, note_id: str) -> None:
    if not await ctx.store.delete_note(principal.account.id, note_id, ctx.clock.now()):
        raise AuthError("not_found", "no such note in this account")
