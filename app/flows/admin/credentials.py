"""Is this a live credential an agent presented? (the admin API's ``credentials/validate``, in the
manner of RFC 7662 introspection, for the operator's own services). An access token is checked the
way the resource checks it (``use.authenticate``), an identity assertion the way the token endpoint
does (``exchange.assertion_grant``): both read the grant, so a revoked or expired one is not live."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from app.context import Context
from app.errors import AuthError
from app.flows.admin.views import iso
from app.flows.exchange import assertion_grant
from app.flows.issue import TYP_ACCESS, TYP_IDENTITY
from app.flows.use import authenticate
from app.store.port import AccessState
from app.tokens import MAX_TOKEN_LENGTH, jose_segment

MAX_CREDENTIAL_LENGTH = 8 * MAX_TOKEN_LENGTH  # our JWTs are well under 2 KB


Kind = Literal["access_token", "identity_assertion"]


class ValidateRequest(msgspec.Struct):
    token: str


class CredentialCheck(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``active`` alone when the credential is not live (nothing more is said of it)."""

    active: bool
    kind: Kind | None = None
    account_id: str | None = None
    registration_id: str | None = None
    account_type: str | None = None
    scopes: list[str] | None = None
    expires_at: str | None = None


INACTIVE = CredentialCheck(active=False)


def _live(kind: Kind, state: AccessState, scopes: Iterable[str], exp: int) -> CredentialCheck:
    return CredentialCheck(
        active=True,
        kind=kind,
        account_id=state.account.id,
        registration_id=state.registration.id,
        account_type=state.account.kind,
        scopes=list(scopes),
        expires_at=iso(exp),
    )


async def validate(ctx: Context, token: str) -> CredentialCheck:
    if not token or len(token) > MAX_CREDENTIAL_LENGTH:
        return INACTIVE
    try:
        typ = str(jose_segment(token, 0).get("typ", "")).lower()
        if typ == TYP_ACCESS:
            p = await authenticate(ctx, token)
            state = AccessState(registration=p.registration, account=p.account, token_revoked=False)
            return _live("access_token", state, sorted(p.scopes), int(p.claims["exp"]))
        if typ == TYP_IDENTITY:
            state, scopes, exp = await assertion_grant(ctx, token)
            assert exp is not None  # an identity assertion always has one
            return _live("identity_assertion", state, scopes, exp)
    except AuthError as exc:
        if exc.code == "temporarily_unavailable":
            raise
    return INACTIVE
