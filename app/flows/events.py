"""Security events from agent identity providers: RFC 8417 SETs pushed per RFC 8935.

A revocation event for a provider subject ``(iss, sub)`` kills every identity assertion and access
token issued for it at or before the SET's ``iat`` (the grant's ``not_before``), on every instance at
their next use. Unknown event types are ignored (RFC 8417 §2.2 lets a receiver skip what it does not
understand). Errors use RFC 8935 §2.3's codes, which the route renders as ``{"err", "description"}``.
"""

from __future__ import annotations

from typing import Any

import jwt

from app.config import ASYMMETRIC_ALGS
from app.context import Context
from app.errors import AuthError
from app.flows import grants
from app.tokens import SIGNATURE_ONLY, jose_segment

TYP_SET = "secevent+jwt"
# The revocation event under both URIs seen in the wild (spec/protocol.md § Revocation and events).
REVOKED_URIS = (
    "https://schemas.workos.com/events/agent/auth/identity/assertion/revoked",
    "https://schemas.workos.com/events/agent/identity/assertion/revoked",
)


def _subject(event: Any, claims: dict[str, Any], issuer: str) -> str | None:
    """The provider subject an event is about: RFC 9493 ``iss_sub`` subject, ``sub_id``, or ``sub``."""
    for container in (event if isinstance(event, dict) else {}, claims):
        for name in ("subject", "sub_id"):
            subject = container.get(name)
            if isinstance(subject, dict) and subject.get("format") == "iss_sub":
                if subject.get("iss") != issuer:
                    return None  # a provider speaks only for its own subjects
                sub = subject.get("sub")
                return sub if isinstance(sub, str) and sub else None
        sub = container.get("sub")
        if isinstance(sub, str) and sub:
            return sub
    return None


async def receive(ctx: Context, token: str) -> int:
    """Verify and apply one SET; returns how many grants it revoked."""
    s = ctx.settings
    if len(token) > s.idjag_max_bytes:
        raise AuthError("invalid_request", f"the SET is larger than {s.idjag_max_bytes} bytes")
    header = jose_segment(token, 0)
    # RFC 8417 §2.3: explicit typing keeps a SET from being taken for any other JWT (and vice versa).
    if str(header.get("typ", "")).lower() != TYP_SET:
        raise AuthError("invalid_request", f"not a security event token (typ must be {TYP_SET})")
    provider = s.provider(str(jose_segment(token, 1).get("iss", "")))
    if provider is None:
        raise AuthError("invalid_issuer", "the SET's issuer is not a trusted provider")
    alg = header.get("alg")
    if alg not in ASYMMETRIC_ALGS or alg not in provider.algorithms:
        raise AuthError("invalid_key", "the SET's algorithm is not accepted")
    kid = header.get("kid")
    try:
        key = await ctx.jwks.key(provider.jwks_url, kid if isinstance(kid, str) else None, alg)
    except AuthError as exc:
        if exc.code == "temporarily_unavailable":
            raise
        raise AuthError("invalid_key", "the SET was not signed by a key of its issuer") from exc
    try:
        claims: dict[str, Any] = SIGNATURE_ONLY.decode(token, key, algorithms=[alg])
    except jwt.PyJWTError as exc:
        raise AuthError("invalid_key", "the SET's signature does not verify") from exc
    aud = claims.get("aud")
    if aud != s.issuer and not (isinstance(aud, list) and s.issuer in aud):
        raise AuthError("invalid_audience", f"the SET's aud must include {s.issuer}")
    now = ctx.clock.now()
    iat, jti, events = claims.get("iat"), claims.get("jti"), claims.get("events")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or not isinstance(jti, str) or not jti:
        raise AuthError("invalid_request", "the SET lacks iat or jti")
    if not isinstance(events, dict):
        raise AuthError("invalid_request", "the SET lacks an events object (RFC 8417 §2.2)")
    if iat < now - s.set_max_age_seconds:
        raise AuthError("invalid_request", "the SET is stale")
    if iat > now + s.clock_skew_seconds:
        raise AuthError("invalid_request", "the SET was issued in the future")
    # First writer wins across instances; kept for as long as a SET this old is accepted at all.
    expires = iat + s.set_max_age_seconds + s.clock_skew_seconds
    if not await ctx.store.consume_once("set", f"{provider.issuer}\n{jti}", expires, now):
        raise AuthError("invalid_request", "this SET (its jti) was already received")
    revoked = 0
    for uri, event in events.items():
        if uri not in REVOKED_URIS:
            continue
        subject = _subject(event, claims, provider.issuer)
        if subject is None:
            continue
        delegation = await ctx.store.get_delegation(provider.issuer, subject)
        if delegation is None:
            continue
        account_id, registration_id = delegation.account_id, delegation.registration_id
        if await grants.revoke_issued_until(ctx, account_id, registration_id, int(iat), provider=provider.issuer):
            revoked += 1
    return revoked
