"""Using an access token on the protected resource (RFC 6750), exactly revocable.

The signature of a given token is verified once per process (cached until ``exp``); every use still
reads the grant, the account and the token's revocation mark from the store in one round trip, so a
revoked, claimed-over or expired grant fails on its very next use, on every instance.
"""

from __future__ import annotations

from typing import Any

import msgspec

from app.context import Context
from app.errors import AuthError
from app.flows.issue import TYP_ACCESS, grant_is_dead, verify
from app.store.port import Account, Note, Registration


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    account: Account
    registration: Registration
    scopes: frozenset[str]
    claims: dict[str, Any]
    # The account's notes, read with the token check when the route asked for them (``notes=True``).
    notes: list[Note] | None = None


async def authenticate(ctx: Context, token: str, *, notes: bool = False) -> Principal:
    now = ctx.clock.now()
    claims = ctx.access_cache.get(token, now)
    if claims is None:
        claims = verify(ctx, token, typ=TYP_ACCESS, audiences=(ctx.settings.resource_str,), error="invalid_token")
        ctx.access_cache.put(token, claims)
    # An MCP client's token names its grant in ``reg``; an agent's grant is its ``client_id``.
    reg_id, jti, account_id = claims.get("reg", claims.get("client_id")), claims.get("jti"), claims.get("sub")
    if not isinstance(reg_id, str) or not isinstance(jti, str) or not isinstance(account_id, str):
        raise AuthError("invalid_token", "the access token lacks client_id, jti or sub")
    state = await ctx.store.access_state(account_id, reg_id, jti, now, notes=notes)
    if state is None or state.registration.revoked_at is not None:
        raise AuthError(
            "invalid_token",
            "the registration behind this token was revoked, or its account has expired",
            "Register again at the identity endpoint (see /auth.md).",
        )
    if state.token_revoked or grant_is_dead(state, claims):
        raise AuthError("invalid_token", "the access token was revoked")
    scope = claims.get("scope")
    return Principal(
        account=state.account,
        registration=state.registration,
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        claims=claims,
        notes=state.notes,
    )


def require_scopes(principal: Principal, scopes: tuple[str, ...]) -> None:
    """RFC 6750 §3.1 insufficient_scope, naming what is missing."""
    missing = [s for s in scopes if s not in principal.scopes]
    if missing:
        hint = (
            "Ask a human to claim the account; the claimed account gets these scopes."
            if principal.account.kind == "temporary"
            else "This registration was not granted these scopes."
        )
        raise AuthError(
            "insufficient_scope",
            f"this request needs the scope {' '.join(missing)}",
            hint,
            extra={"scope": " ".join(missing)},
        )
