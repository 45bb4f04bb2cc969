"""The demo protected API, guarded by scope."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post

from app import endpoints as ep
from app.flows import notes
from app.routes.guard import principal_of, requires
from app.routes.http import ctx_of, json_body, json_response
from app.wire import NoteCreate


@get(ep.NOTES, guards=[requires("notes:read", notes=True)])
async def list_notes(request: Request[Any, Any, Any]) -> Response[bytes]:
    return json_response(await notes.list_all(ctx_of(request), principal_of(request)))


@post(ep.NOTES, guards=[requires("notes:write")])
async def create_note(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = await json_body(request, NoteCreate)
    created = await notes.create(ctx_of(request), principal_of(request), body.text)
    return json_response(created, status=201)


@get(ep.NOTES + "/{note_id:str}", guards=[requires("notes:read")])
async def get_note(request: Request[Any, Any, Any]) -> Response[bytes]:
    note_id = request.path_params["note_id"]
    return json_response(await notes.get_one(ctx_of(request), principal_of(request), note_id))


@delete(ep.NOTES + "/{note_id:str}", guards=[requires("notes:delete")], status_code=204)
async def delete_note(request: Request[Any, Any, Any]) -> None:
    await notes.delete(ctx_of(request), principal_of(request), request.path_params["note_id"])


HANDLERS = [list_notes, create_note, get_note, delete_note]
