"""The auth.md profile endpoints: challenge and registration."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from app import endpoints as ep
from app.errors import AuthError
from app.flows import challenge, register
from app.routes.http import ctx_of, decode_json, json_body, json_response, source_of
from app.wire import AnonymousRegistration, Typed

SUPPORTED_TYPES = ("anonymous",)


@post(ep.CHALLENGE, status_code=200)
async def issue_challenge(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = ctx_of(request)
    return json_response(await challenge.issue_challenge(ctx, source_of(request, ctx)), no_store=True)


@post(ep.IDENTITY, status_code=200)
async def register_identity(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = ctx_of(request)
    typed = await json_body(request, Typed)
    if typed.type is None:
        raise AuthError("invalid_request", 'the body needs a `type`, e.g. {"type": "anonymous"}')
    if typed.type == "anonymous":
        req = decode_json(await request.body(), AnonymousRegistration)
        result = await register.register_anonymous(ctx, req, source_of(request, ctx))
        return json_response(result, no_store=True)
    raise AuthError(
        "invalid_request",
        f"unsupported registration type {typed.type!r}; this service supports: {', '.join(SUPPORTED_TYPES)}",
    )


HANDLERS = [issue_challenge, register_identity]
