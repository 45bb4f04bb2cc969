"""OAuth endpoints: token (its grants: app/flows/token.py), revocation (RFC 7009), introspection (RFC 7662)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from app import endpoints as ep
from app.flows import revoke
from app.flows import token as grant
from app.routes.http import (
    NO_STORE,
    Connection,
    Encoded,
    asgi_route,
    body_of,
    ctx_of,
    decode_form,
    form_body,
    json_response,
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


HANDLERS = [asgi_route(ep.TOKEN, {"POST": token}), revoke_token, introspect]
