"""RFC 7009 revocation and RFC 7662 introspection.

Revocation semantics (spec/protocol.md § Revocation): an access token kills that token; an identity
assertion or a refresh token kills its grant and everything derived from it; for an unclaimed temporary account it
deletes the account with everything it owns. Unknown, invalid or already-dead tokens get the same
200 (RFC 7009 §2.2), so the endpoint reveals nothing about which tokens exist.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import logging
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

import jwt

from app.context import Context
from app.errors import AuthError
from app.flows import grants, refresh
from app.flows.issue import TYP_ACCESS, TYP_IDENTITY, verify
from app.flows.limits import enforce, source_key
from app.flows.params import single
from app.flows.use import authenticate
from app.keys import hash_secret, verify_secret
from app.store.port import WindowHit
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


@functools.cache
def _unknown_client_hash() -> str:
    """Stands in for an unknown client's stored hash, so an unknown id costs the same slow check as a
    known one with a wrong secret: the answer's timing does not tell which client ids exist."""
    return hash_secret(secrets.token_urlsafe(32))


async def _authenticate_client(ctx: Context, authorization: str | None, source: str) -> str:
    """RFC 7662 §2.1 requires client authentication; we take client_secret_basic (RFC 6749 §2.3.1)."""
    challenge = {"WWW-Authenticate": 'Basic realm="authmd introspection"'}
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthError("invalid_client", "introspection needs HTTP Basic client authentication", headers=challenge)
    try:
        raw_id, _, raw_secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except ValueError as exc:  # binascii.Error, UnicodeDecodeError, or non-ASCII text that is not base64 at all
        raise AuthError("invalid_client", "malformed Basic credentials", headers=challenge) from exc
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    client = next((c for c in ctx.settings.introspection_clients if c.client_id == client_id), None)
    memo = (client_id, hashlib.sha256(secret.encode()).hexdigest())
    if client is not None and memo in ctx.verified_clients:
        return client_id
    # Reserve the slow check before running it (per client id, unknown ids sharing one counter, and per
    # source): a flood of wrong secrets is refused unchecked and cannot be turned into CPU burnt.
    s = ctx.settings
    await enforce(
        ctx,
        [
            WindowHit(f"introspect:client:{client.client_id if client else '?'}", s.introspection_checks_per_client),
            WindowHit(f"introspect:src:{source_key(source)}", s.introspection_checks_per_source),
        ],
    )
    stored = client.client_secret.reveal() if client is not None else _unknown_client_hash()
    # scrypt is slow by design: keep it off the event loop.
    ok = await asyncio.to_thread(verify_secret, secret, stored)
    if not ok or client is None:
        raise AuthError("invalid_client", "unknown client or wrong secret", headers=challenge)
    ctx.verified_clients.add(memo)
    return client_id


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
