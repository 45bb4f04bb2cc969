"""POST {token_endpoint}: the RFC 7523 JWT-bearer grant → an RFC 9068 access token."""

from __future__ import annotations

from collections.abc import Mapping

from app.context import Context
from app.endpoints import TOKEN
from app.errors import AuthError
from app.flows.issue import TYP_ACCESS, TYP_IDENTITY, mint, new_id, verify
from app.flows.params import single
from app.store.port import AccessState
from app.wire import TokenIssued

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _live_grant(state: AccessState | None, claims: dict[str, object]) -> AccessState:
    """The grant behind the assertion must still be live, unrevoked and of the same generation."""
    if state is None or state.registration.revoked_at is not None or state.registration.generation != claims.get("gen"):
        raise AuthError("invalid_grant", "the grant behind this assertion was revoked or has expired")
    return state


async def exchange(ctx: Context, form: Mapping[str, list[str]]) -> TokenIssued:
    grant_type = single(form, "grant_type")
    if grant_type is None:
        raise AuthError("invalid_request", "grant_type is missing")
    if grant_type != JWT_BEARER:
        raise AuthError("unsupported_grant_type", f"this token endpoint only supports {JWT_BEARER}")
    assertion = single(form, "assertion")
    if not assertion:
        raise AuthError("invalid_request", "assertion is missing (RFC 7523 §2.1)")
    resource = single(form, "resource")
    # RFC 8707 §2: a resource we do not serve is invalid_target.
    if resource is not None and resource != ctx.settings.resource:
        raise AuthError("invalid_target", "this service issues tokens only for its own resource")
    # RFC 7523 §3: iss, sub, aud (our issuer or the token endpoint URL), exp, signature.
    claims = ctx.assertion_cache.get(assertion, ctx.clock.now()) or verify(
        ctx,
        assertion,
        typ=TYP_IDENTITY,
        audiences=(ctx.settings.issuer_str, ctx.endpoints.url(TOKEN)),
        error="invalid_grant",
    )
    reg_id, account_id = claims.get("reg"), claims.get("sub")
    if not isinstance(reg_id, str) or not isinstance(account_id, str):
        raise AuthError("invalid_grant", "the assertion names no registration or account")
    now = ctx.clock.now()
    state = _live_grant(await ctx.store.access_state(account_id, reg_id, None, now), claims)

    granted = state.registration.scopes
    requested = single(form, "scope")
    scopes = granted
    if requested is not None:
        wanted = tuple(dict.fromkeys(requested.split()))
        if not wanted or not set(wanted) <= set(granted):
            raise AuthError("invalid_scope", "the requested scope exceeds what this registration was granted")
        scopes = wanted

    iat = int(now)
    # Never outlive the account, nor the assertion it came from.
    limits = [iat + ctx.settings.access_token_ttl_seconds, int(claims["exp"])]
    if state.account.expires_at is not None:
        limits.append(state.account.expires_at)
    exp = min(limits)
    if exp <= iat:
        raise AuthError("invalid_grant", "the account behind this assertion is about to expire")
    scope = " ".join(scopes)
    token = mint(
        ctx,
        TYP_ACCESS,
        {
            # RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti (+ scope, §2.2.3)
            "iss": ctx.settings.issuer,
            "sub": state.account.id,
            "aud": ctx.settings.resource,
            "client_id": state.registration.id,
            "iat": iat,
            "exp": exp,
            "jti": new_id("at"),
            "scope": scope,
            "gen": state.registration.generation,
        },
    )
    return TokenIssued(access_token=token, token_type="Bearer", expires_in=exp - iat, scope=scope)
