"""The demo protected API, guarded by scope."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get

from app import endpoints as ep
from app.flows import notes
from app.routes.guard import bearer, principal_of, requires
from app.routes.http import Connection, Encoded, asgi_route, body_of, ctx_of, decode_json, json_response, require_json
from app.wire import NoteCreate

# The list is the API's hottest call (every agent polls it): it and the create it shares a path with are
# a bare ASGI route (app/routes/http.py asgi_route).


async def list_notes(request: Connection) -> Encoded:
    principal = await bearer(request, ("notes:read",), notes=True)
    return json_response(await notes.list_all(ctx_of(request), principal))


async def create_note(request: Connection) -> Encoded:
    principal = await bearer(request, ("notes:write",))
    require_json(request)
    body = decode_json(await body_of(request), NoteCreate)
    created = await notes.create(ctx_of(request), principal, body.text)
    return json_response(created, status=201)


@get(ep.NOTES + "/{note_id:str}", guards=[requires("notes:read")])
async def get_note(request: Request[Any, Any, Any]) -> Encoded:
    note_id = request.path_params["note_id"]
    return json_response(await notes.get_one(ctx_of(request), principal_of(request), note_id))


@delete(ep.NOTES + "/{note_id:str}", guards=[requires("notes:delete")], status_code=204)
async def delete_note(request: Request[Any, Any, Any]) -> None:
    await notes.delete(ctx_of(request), principal_of(request), request.path_params["note_id"])


HANDLERS = [asgi_route(ep.NOTES, {"GET": list_notes, "POST": create_note}), get_note, delete_note]
