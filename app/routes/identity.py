"""The auth.md profile endpoints: challenge and registration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, get_args

import msgspec
from litestar import Request, Response, post

from app import endpoints as ep
from app import observe
from app.context import Context
from app.errors import AuthError
from app.flows import challenge, claim, delegate, discover, events, refresh, register
from app.flows.claim import by_idjag, complete
from app.routes.http import (
    Connection,
    Encoded,
    asgi_route,
    body_of,
    ctx_of,
    decode_json,
    json_body,
    json_response,
    media_type,
    require_json,
    source_of,
)
from app.wire import (
    AnonymousRegistration,
    ClaimComplete,
    ClaimStart,
    ClaimStatusRequest,
    IdentityAssertionRegistration,
    RefreshRequest,
    Registration,
    ServiceAuthRegistration,
    Typed,
)

SECEVENT_JWT = "application/secevent+jwt"


@post(ep.CHALLENGE, status_code=200)
async def issue_challenge(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = ctx_of(request)
    return json_response(await challenge.issue_challenge(ctx, source_of(request, ctx)), no_store=True)


# ---- POST /agent/identity: one decode into the tagged union, then a table {type → handler} ----------
# (node-oidc-provider's grants/index.js). Every registration type the metadata may advertise has a
# handler here, plus `refresh` (the renewal of a grant: documented, not a way to register). A type this
# configuration turned off still reaches its handler when the handler names the refusal itself
# (anonymous_registration_disabled, claim_not_offered); identity_assertion exists only with a provider.

Grant = Callable[[Context, Any, str], Awaitable[object]]


async def _anonymous(ctx: Context, req: AnonymousRegistration, source: str) -> object:
    return await register.register_anonymous(ctx, req, source)


async def _service_auth(ctx: Context, req: ServiceAuthRegistration, source: str) -> object:
    return await register.register_service_auth(ctx, req, source)


async def _identity_assertion(ctx: Context, req: IdentityAssertionRegistration, source: str) -> object:
    return await delegate.register_identity_assertion(ctx, req)


async def _refresh(ctx: Context, req: RefreshRequest, source: str) -> object:
    return await refresh.refresh(ctx, req.refresh_token)


GRANTS: dict[str, Grant] = {
    "anonymous": _anonymous,
    "service_auth": _service_auth,
    "identity_assertion": _identity_assertion,
    "refresh": _refresh,
}
# The request struct of each type, by its tag (the union is the one place the tags are written).
REQUESTS: dict[str, type[msgspec.Struct]] = {str(t.__struct_config__.tag): t for t in get_args(Registration)}
_REGISTRATION: msgspec.json.Decoder[Registration] = msgspec.json.Decoder(Registration)


def grants(ctx: Context) -> dict[str, Grant]:
    """The handlers this configuration answers: identity_assertion only when a provider is trusted."""
    return {t: g for t, g in GRANTS.items() if t != "identity_assertion" or ctx.settings.providers}


def _refusal(ctx: Context, raw: bytes, handled: dict[str, Grant], exc: AuthError) -> AuthError:
    """Why a body the union refused is refused, in the words these errors have always had: a missing
    or unsupported ``type`` is named as such (msgspec's union would only say "Expected `str`" or
    "Invalid value"), then the type's own struct names the field. Only a refused body is read again."""
    try:
        typed = decode_json(raw, Typed)
        if typed.type is None:
            return AuthError("invalid_request", 'the body needs a `type`, e.g. {"type": "anonymous"}')
        if typed.type not in handled:
            return _unsupported(ctx, typed.type)
        decode_json(raw, REQUESTS[typed.type])
    except AuthError as why:
        return why
    return exc


def _unsupported(ctx: Context, type_: str) -> AuthError:
    supported = ", ".join(discover.identity_types(ctx))
    return AuthError("invalid_request", f"unsupported registration type {type_!r}; supported: {supported}")


async def register_identity(request: Connection) -> Encoded:
    ctx = ctx_of(request)
    require_json(request)
    raw = await body_of(request)
    handled = grants(ctx)
    try:
        req = decode_json(raw, _REGISTRATION)
    except AuthError as exc:
        raise _refusal(ctx, raw, handled, exc) from exc
    type_ = str(req.__struct_config__.tag)
    if type_ not in handled:
        raise _unsupported(ctx, type_)
    if type_ == "refresh":
        return json_response(await handled[type_](ctx, req, source_of(request, ctx)), no_store=True)
    try:
        result = await handled[type_](ctx, req, source_of(request, ctx))
    except AuthError as exc:
        if exc.status < 500:
            outcome = "pending" if exc.code == "interaction_required" else "refused"
            observe.registration_answered(ctx.tally, type_, outcome, ctx.clock.now())
        raise
    observe.registration_answered(ctx.tally, type_, "created", ctx.clock.now())
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
HANDLERS = [
    issue_challenge,
    asgi_route(ep.IDENTITY, {"POST": register_identity}),
    start_claim,
    complete_claim,
    claim_status,
    receive_event,
]
