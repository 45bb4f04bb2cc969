"""OAuth endpoints: token (its grants: app/flows/token.py), revocation (RFC 7009), introspection (RFC 7662)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post

from app import endpoints as ep
from app.flows import dynamic_clients, revoke
from app.flows import token as grant
from app.routes.http import (
    NO_STORE,
    Connection,
    Encoded,
    asgi_route,
    body_of,
    ctx_of,
    decode_form,
    decode_json,
    form_body,
    json_response,
    require_json,
    scope_header,
    source_of,
)


async def token(request: Connection) -> Encoded:
    ctx = ctx_of(request)
    form = decode_form(request, await body_of(request))
    authorization = scope_header(request.scope, b"authorization")  # type: ignore[arg-type]
    basic = authorization.decode("latin-1") if authorization else None
    req = grant.TokenRequest(form, basic, lambda: source_of(request, ctx))
    return json_response(await grant.token(ctx, req), no_store=True)


_ANY_JSON: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


async def register_client(request: Connection) -> Encoded:
    """RFC 7591 §3: a JSON object of client metadata in, 201 with the client's registration out."""
    ctx = ctx_of(request)
    require_json(request)
    document = decode_json(await body_of(request), _ANY_JSON)  # its shape is RFC 7591's to judge
    answer = await dynamic_clients.register(ctx, document, source_of(request, ctx))
    return json_response(answer, status=201, no_store=True)


@post(ep.REVOKE, status_code=200)
async def revoke_token(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = ctx_of(request)
    await revoke.revoke(ctx, revoke.revoke_request(await form_body(request)))
    # RFC 7009 §2.2: 200 with an empty body, for unknown tokens too.
    return Response(content=b"", status_code=200, headers=NO_STORE)


@post(ep.INTROSPECT, status_code=200)
async def introspect(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = ctx_of(request)
    form = await form_body(request)
    result = await revoke.introspect(ctx, request.headers.get("authorization"), form, source_of(request, ctx))
    return json_response(result, no_store=True)


HANDLERS = [
    asgi_route(ep.TOKEN, {"POST": token}),
    asgi_route(ep.REGISTER, {"POST": register_client}),
    revoke_token,
    introspect,
]
