"""POST {token_endpoint}: the RFC 7523 JWT-bearer grant → an RFC 9068 access token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt

from app import observe
from app.context import Context
from app.endpoints import TOKEN
from app.errors import AuthError
from app.flows.delegate import resolve
from app.flows.idjag import TYP_ID_JAG, verify_id_jag
from app.flows.issue import TYP_ACCESS, TYP_IDENTITY, grant_is_dead, mint, verify
from app.flows.params import one, single
from app.protocol import JWT_BEARER
from app.store.port import AccessState
from app.tokens import new_id
from app.wire import ExchangeRequest, TokenIssued


def _token_type(token: str) -> str:
    try:
        return str(jwt.get_unverified_header(token).get("typ", "")).lower()
    except jwt.PyJWTError:
        return ""


def names_our_resource(requested: str, resource: str) -> bool:
    """RFC 8707 §2 (revision 2's reading): the protected resource itself, or a URI below it at a
    path-segment boundary (``{issuer}/api/notes`` names ``{issuer}/api``; ``{issuer}/apis`` does not).
    No fragment (§2: it MUST NOT have one), and no dot segments, which would climb out of it once a
    server normalised the path (RFC 3986 §5.2.4). Anything else is invalid_target; the token's ``aud``
    is always the resource's own identifier."""
    if requested == resource:
        return True
    parts = urlsplit(requested)
    if parts.fragment or "#" in requested or not requested.startswith(resource.rstrip("/") + "/"):
        return False
    segments = unquote(parts.path).split("/")
    return not any(seg in (".", "..") for seg in segments)


def token_request(form: Mapping[str, list[str]]) -> ExchangeRequest:
    """The token endpoint's form, read once, refused with the same error in the same order as ever.

    Parsed in stages, each refusing before the next is read: ``grant_type`` first (missing or repeated:
    invalid_request; not the JWT-bearer grant: unsupported_grant_type), then ``assertion`` (repeated,
    missing or empty: invalid_request), then ``resource`` (repeated: invalid_request). Unknown fields are
    ignored. ``scope`` is the one lazy field: its values are kept as sent and a repeated scope is
    reported by ``requested_scope`` only after the assertion has verified, so a bad assertion stays
    invalid_grant whatever the scope. (``resource``'s invalid_target reads the settings and stays in
    ``exchange``, before the assertion is verified, as before.)"""
    grant_type = single(form, "grant_type")
    if grant_type is None:
        raise AuthError("invalid_request", "grant_type is missing")
    if grant_type != JWT_BEARER:
        raise AuthError("unsupported_grant_type", f"this token endpoint only supports {JWT_BEARER}")
    assertion = single(form, "assertion")
    if not assertion:
        raise AuthError("invalid_request", "assertion is missing (RFC 7523 §2.1)")
    resource = single(form, "resource")
    return ExchangeRequest(
        grant_type=grant_type, assertion=assertion, resource=resource, scope=tuple(form.get("scope") or ())
    )


def requested_scope(req: ExchangeRequest) -> str | None:
    """The scope the client asked for, or None; a repeated scope is invalid_request (RFC 6749 §3.2)."""
    return one(req.scope, "scope")


async def exchange(ctx: Context, req: ExchangeRequest, client_id: str | None = None) -> TokenIssued:
    """``client_id``: the OAuth client that authenticated (or named itself) on this request, if any:
    then only an ID-JAG issued to exactly that client is accepted (MCP's Enterprise-Managed
    Authorization; ID-JAG draft §4.3: the token endpoint checks the client)."""
    assertion = req.assertion
    if req.resource is not None and not names_our_resource(req.resource, ctx.settings.resource_str):
        raise AuthError("invalid_target", "this service issues tokens only for its own resource")
    # One of our own assertions this process signed or checked needs no look at its header.
    known = ctx.assertion_cache.get(assertion, ctx.clock.now())
    if known is None and ctx.settings.providers and _token_type(assertion) == TYP_ID_JAG:
        state, granted, limit = await _from_id_jag(ctx, assertion, client_id)
    elif client_id is not None:
        # An agent's identity assertion is its own credential: no OAuth client presents one.
        raise AuthError("invalid_grant", "an OAuth client may present only an ID-JAG issued to it")
    else:
        state, granted, limit = await assertion_grant(ctx, assertion, known)
    scopes = narrowed(granted, requested_scope(req), "what this registration was granted")
    return issue(ctx, state, scopes, limit)


def narrowed(granted: tuple[str, ...], requested: str | None, what: str) -> tuple[str, ...]:
    """RFC 6749 §3.3 / §6: the requested scope when it is within ``granted``, else invalid_scope."""
    if requested is None:
        return granted
    wanted = tuple(dict.fromkeys(requested.split()))
    if not wanted or not set(wanted) <= set(granted):
        raise AuthError("invalid_scope", f"the requested scope exceeds {what}")
    return wanted


async def assertion_grant(
    ctx: Context, assertion: str, known: dict[str, Any] | None = None
) -> tuple[AccessState, tuple[str, ...], int | None]:
    """The live grant behind one of our identity assertions, its scopes and the assertion's expiry;
    invalid_grant otherwise (the admin API's credential check reads it too). ``known``: its claims,
    already found in the cache of verified assertions."""
    # RFC 7523 §3: iss, sub, aud (our issuer or the token endpoint URL), exp, signature.
    claims = (
        known
        or ctx.assertion_cache.get(assertion, ctx.clock.now())
        or verify(
            ctx,
            assertion,
            typ=TYP_IDENTITY,
            audiences=(ctx.settings.issuer_str, ctx.endpoints.url(TOKEN)),
            error="invalid_grant",
        )
    )
    reg_id, account_id = claims.get("reg"), claims.get("sub")
    if not isinstance(reg_id, str) or not isinstance(account_id, str):
        raise AuthError("invalid_grant", "the assertion names no registration or account")
    state = await ctx.store.access_state(account_id, reg_id, None, ctx.clock.now())
    if state is None or grant_is_dead(state, claims):
        raise AuthError("invalid_grant", "the grant behind this assertion was revoked or has expired")
    # Never outlive the assertion the token came from.
    return state, state.registration.scopes, int(claims["exp"])


async def _from_id_jag(
    ctx: Context, assertion: str, client_id: str | None
) -> tuple[AccessState, tuple[str, ...], int | None]:
    """The draft's path: a trusted provider's ID-JAG exchanged directly (no refresh token)."""
    try:
        jag = await verify_id_jag(ctx, assertion)
        if client_id is not None and jag.client_id != client_id:
            raise AuthError("invalid_grant", "the ID-JAG was issued to another client (its client_id)")
        state = (await resolve(ctx, jag, agent="token")).state
    except AuthError as exc:
        # An untrusted issuer keeps its revision 2 code here too; every other verification failure is
        # RFC 7523 §3.1's invalid_grant, with the specific code in the description.
        if exc.code in ("temporarily_unavailable", "invalid_grant", "issuer_not_enabled"):
            raise
        # The token endpoint speaks RFC 6749 §5.2: every verification failure is invalid_grant.
        raise AuthError("invalid_grant", f"{exc.code}: {exc.description}", exc.hint) from exc
    granted = tuple(s for s in state.registration.scopes if s in jag.scopes)
    return state, granted, None


def issue(
    ctx: Context, state: AccessState, scopes: tuple[str, ...], limit: int | None, refresh_token: str | None = None
) -> TokenIssued:
    """An RFC 9068 access token for the grant ``state`` holds. An agent's grant is its own client
    (``client_id`` = the registration); an MCP client's grant names its OAuth client, and ``reg``
    names the grant."""
    iat = int(ctx.clock.now())
    # Never outlive the account (nor the assertion, when there is one).
    limits = [iat + ctx.settings.access_token_ttl_seconds]
    if limit is not None:
        limits.append(limit)
    if state.account.expires_at is not None:
        limits.append(state.account.expires_at)
    exp = min(limits)
    if exp <= iat:
        raise AuthError("invalid_grant", "the account behind this assertion is about to expire")
    scope = " ".join(scopes)
    reg = state.registration
    extra = {"reg": reg.id} if reg.client_id is not None else {}
    token = mint(
        ctx,
        TYP_ACCESS,
        {
            # RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti (+ scope, §2.2.3)
            "iss": ctx.settings.issuer,
            "sub": state.account.id,
            "aud": ctx.settings.resource,
            "client_id": reg.client_id or reg.id,
            **extra,
            "iat": iat,
            "exp": exp,
            "jti": new_id("at"),
            "scope": scope,
            "gen": reg.generation,
        },
    )
    observe.token_issued("access_token")
    return TokenIssued(
        access_token=token, token_type="Bearer", expires_in=exp - iat, scope=scope, refresh_token=refresh_token
    )
