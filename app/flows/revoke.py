"""RFC 7009 revocation and RFC 7662 introspection.

Revocation semantics (spec/protocol.md § Revocation): an access token kills that token; an identity
assertion or a refresh token kills its grant and everything derived from it; for an unclaimed temporary account it
deletes the account with everything it owns. Unknown, invalid or already-dead tokens get the same
200 (RFC 7009 §2.2), so the endpoint reveals nothing about which tokens exist.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import jwt

from app.context import Context
from app.errors import AuthError
from app.flows import clients, grants, refresh
from app.flows.issue import TYP_ACCESS, TYP_IDENTITY, verify
from app.flows.params import single
from app.flows.use import authenticate
from app.wire import Introspection, RevokeRequest

log = logging.getLogger("authmd.revoke")


def _token_type(token: str) -> str | None:
    try:
        return str(jwt.get_unverified_header(token).get("typ", "")).lower()
    except jwt.PyJWTError:
        return None


def revoke_request(form: Mapping[str, list[str]], spec: str = "RFC 7009 §2.1") -> RevokeRequest:
    """The form of a revocation (or introspection: RFC 7662 §2.1 is the same form), read once.
    ``token_type_hint`` is only a hint (RFC 7009 §2.1) and never read: the token's own `typ` decides."""
    token = single(form, "token")
    if not token:
        raise AuthError("invalid_request", f"token is missing ({spec})")
    return RevokeRequest(token=token)


async def revoke(ctx: Context, req: RevokeRequest) -> None:
    token = req.token
    if token.startswith("art_"):
        await refresh.revoke(ctx, token)
        return
    typ = _token_type(token)
    try:
        if typ == TYP_ACCESS:
            claims = verify(ctx, token, typ=TYP_ACCESS, audiences=(ctx.settings.resource_str,), error="invalid_token")
            await ctx.store.revoke_token(claims["sub"], claims["jti"], claims["exp"], ctx.clock.now())
        elif typ == TYP_IDENTITY:
            claims = verify(ctx, token, typ=TYP_IDENTITY, audiences=(ctx.settings.issuer_str,), error="invalid_grant")
            await _revoke_grant(ctx, claims)
    except AuthError:
        log.debug("revocation of an invalid or expired token ignored")


async def _revoke_grant(ctx: Context, claims: dict[str, Any]) -> None:
    reg_id, account_id = claims.get("reg"), claims.get("sub")
    if not isinstance(reg_id, str) or not isinstance(account_id, str):
        return
    now = ctx.clock.now()
    state = await ctx.store.access_state(account_id, reg_id, None, now)
    if state is None or state.registration.generation != claims.get("gen"):
        return
    reg, account = state.registration, state.account
    if account.kind == "temporary" and reg.type == "anonymous":
        await grants.delete_account(ctx, account.id, reg.id, by="agent")
    else:
        await grants.revoke_grant(ctx, account.id, reg.id, by="agent", reason="token_revoked")


# ---------------------------------------------------------------------------------------------------
# RFC 7662 introspection, for resource servers that cannot run the authmd guard
# ---------------------------------------------------------------------------------------------------


async def _authenticate_client(ctx: Context, authorization: str | None, source: str) -> str:
    """RFC 7662 §2.1 requires client authentication; we take client_secret_basic (RFC 6749 §2.3.1)."""
    client_id, secret = clients.basic_credentials(authorization, "authmd introspection")
    s = ctx.settings
    return await clients.check_secret(
        ctx,
        {c.client_id: c.client_secret for c in s.introspection_clients},
        client_id,
        secret,
        source=source,
        counter="introspect",
        limits=(s.introspection_checks_per_client, s.introspection_checks_per_source),
        realm="authmd introspection",
    )


async def introspect(
    ctx: Context, authorization: str | None, form: Mapping[str, list[str]], source: str
) -> Introspection:
    await _authenticate_client(ctx, authorization, source)
    # Read after the client is authenticated: an unknown client learns nothing, not even a form error.
    token = revoke_request(form, "RFC 7662 §2.1").token
    try:
        principal = await authenticate(ctx, token)
    except AuthError:
        return Introspection(active=False)  # RFC 7662 §2.2: nothing more for an inactive token
    c = principal.claims
    return Introspection(
        active=True,
        scope=c.get("scope", ""),
        client_id=c["client_id"],
        sub=c["sub"],
        aud=c["aud"],
        iss=c["iss"],
        exp=c["exp"],
        iat=c["iat"],
        jti=c["jti"],
        token_type="Bearer",
        account_type=principal.account.kind,
    )
