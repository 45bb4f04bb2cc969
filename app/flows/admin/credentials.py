"""Is this a live credential an agent presented? (the admin API's ``credentials/validate``, in the
manner of RFC 7662 introspection, for the operator's own services). An access token is checked the
way the resource checks it (``use.authenticate``), an identity assertion the way the token endpoint
does (``exchange.assertion_grant``): both read the grant, so a revoked or expired one is not live."""

from __future__ import annotations

from typing import Literal

import msgspec

from app.context import Context
from app.errors import AuthError
from app.flows.admin.views import iso
from app.flows.exchange import assertion_grant
from app.flows.issue import TYP_ACCESS, TYP_IDENTITY
from app.flows.use import authenticate
from app.tokens import MAX_TOKEN_LENGTH, jose_segment

MAX_CREDENTIAL_LENGTH = 8 * MAX_TOKEN_LENGTH  # our JWTs are well under 2 KB


class ValidateRequest(msgspec.Struct):
    token: str


class CredentialCheck(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``active`` alone when the credential is not live (nothing more is said of it)."""

    active: bool
    kind: Literal["access_token", "identity_assertion"] | None = None
    account_id: str | None = None
    registration_id: str | None = None
    account_type: str | None = None
    scopes: list[str] | None = None
    expires_at: str | None = None


INACTIVE = CredentialCheck(active=False)


async def validate(ctx: Context, token: str) -> CredentialCheck:
    if not token or len(token) > MAX_CREDENTIAL_LENGTH:
        return INACTIVE
    try:
        typ = str(jose_segment(token, 0).get("typ", "")).lower()
        if typ == TYP_ACCESS:
            principal = await authenticate(ctx, token)
            return CredentialCheck(
                active=True,
                kind="access_token",
                account_id=principal.account.id,
                registration_id=principal.registration.id,
                account_type=principal.account.kind,
                scopes=sorted(principal.scopes),
                expires_at=iso(principal.claims["exp"]),
            )
        if typ == TYP_IDENTITY:
            state, scopes, exp = await assertion_grant(ctx, token)
            return CredentialCheck(
                active=True,
                kind="identity_assertion",
                account_id=state.account.id,
                registration_id=state.registration.id,
                account_type=state.account.kind,
                scopes=list(scopes),
                expires_at=iso(exp),
            )
    except AuthError as exc:
        if exc.code == "temporarily_unavailable":
            raise
    return INACTIVE
