"""The auth.md profile endpoints: challenge and registration."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post

from app import endpoints as ep
from app.errors import AuthError
from app.flows import challenge, claim, delegate, discover, events, refresh, register
from app.flows.claim import by_idjag, complete
from app.routes.http import ctx_of, decode_json, json_body, json_response, media_type, source_of
from app.wire import (
    AnonymousRegistration,
    ClaimComplete,
    ClaimStart,
    ClaimStatusRequest,
    IdentityAssertionRegistration,
    RefreshRequest,
    ServiceAuthRegistration,
    Typed,
)

SECEVENT_JWT = "application/secevent+jwt"


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
        result: Any = await register.register_anonymous(ctx, req, source_of(request, ctx))
    elif typed.type == "identity_assertion" and ctx.settings.providers:
        jag = decode_json(await request.body(), IdentityAssertionRegistration)
        result = await delegate.register_identity_assertion(ctx, jag)
    elif typed.type == "service_auth":
        service = decode_json(await request.body(), ServiceAuthRegistration)
        result = await register.register_service_auth(ctx, service, source_of(request, ctx))
    elif typed.type == "refresh":
        result = await refresh.refresh(ctx, decode_json(await request.body(), RefreshRequest).refresh_token)
    else:
        supported = ", ".join(discover.identity_types(ctx))
        raise AuthError("invalid_request", f"unsupported registration type {typed.type!r}; supported: {supported}")
    return json_response(result, no_store=True)


@post(ep.CLAIM, status_code=200)
async def start_claim(request: Request[Any, Any, Any]) -> Response[bytes]:
    """spec/protocol.md § Claim step 1: a new attempt (``service_auth``), or *ext* a claim by ID-JAG."""
    ctx = ctx_of(request)
    req = await json_body(request, ClaimStart)
    # Revision 2: "login_hint" is the flat dialect's name for service_auth (agents that read the older
    # AUTH.md text send it); no type at all is service_auth too (*ext*).
    if req.type == "identity_assertion":
        result: Any = await by_idjag.claim_with_id_jag(ctx, req.claim_token, req.assertion_type, req.assertion)
    elif req.type in ("service_auth", "login_hint", None):
        result = await claim.start_attempt(ctx, req.claim_token, req.login_hint)
    else:
        methods = ", ".join(claim.methods_offered(ctx)) or "none"
        raise AuthError("invalid_request", f"unsupported claim type {req.type!r}; supported: {methods}")
    return json_response(result, no_store=True)


@post(ep.CLAIM_COMPLETE, status_code=200)
async def complete_claim(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = ctx_of(request)
    req = await json_body(request, ClaimComplete)
    return json_response(await complete.complete(ctx, req.claim_token, req.user_code), no_store=True)


@post(ep.CLAIM_STATUS, status_code=200)
async def claim_status(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = ctx_of(request)
    req = await json_body(request, ClaimStatusRequest)
    return json_response(await claim.status(ctx, req.claim_token), no_store=True)


@post(ep.EVENTS, status_code=202)
async def receive_event(request: Request[Any, Any, Any]) -> Response[bytes]:
    """RFC 8935 push delivery: 202 on success; RFC 8935 §2.3 error bodies (this endpoint alone)."""
    ctx = ctx_of(request)
    try:
        if media_type(request) != SECEVENT_JWT:
            raise AuthError("invalid_request", f"send the SET as {SECEVENT_JWT} (RFC 8935 §2.2)")
        raw = await request.body()
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise AuthError("invalid_request", "the SET is not a compact JWS") from exc
        await events.receive(ctx, token)
    except AuthError as exc:
        if exc.status >= 500:
            raise
        body = {"err": exc.code if exc.code in RFC8935_CODES else "invalid_request", "description": exc.description}
        return Response(content=msgspec.json.encode(body), status_code=400, media_type="application/json")
    return Response(content=b"", status_code=202)


RFC8935_CODES = frozenset(
    {"invalid_request", "invalid_key", "invalid_issuer", "invalid_audience", "authentication_failed", "access_denied"}
)
HANDLERS = [issue_challenge, register_identity, start_claim, complete_claim, claim_status, receive_event]
