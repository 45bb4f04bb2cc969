"""Minting and verifying the JWTs authmd signs.

Two token types, never interchangeable (RFC 8725 §3.11 explicit typing, checked by hand because
PyJWT does not look at ``typ``):
  - identity assertion, ``typ: authmd-identity+jwt``: ``aud`` = our issuer; presented only to our
    token endpoint (RFC 7523 §3). It is not an ID-JAG (``oauth-id-jag+jwt``): an issuer must not
    accept its own assertions as provider attestations.
  - access token, ``typ: at+jwt`` (RFC 9068 §2.1): ``aud`` = the protected resource.
All time checks read the injected clock; PyJWT's own (wall-clock) time checks are switched off.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from app.context import Context
from app.errors import AuthError
from app.keys import b64url
from app.store.port import AccessState, Registration
from app.tokens import OWN_JWS, new_id

TYP_IDENTITY = "authmd-identity+jwt"
TYP_ACCESS = "at+jwt"

# Clock skew we tolerate on `iat`/`nbf` of our own tokens (several instances, several clocks).
MAX_SKEW_SECONDS = 60


_CLAIMS = msgspec.json.Encoder()
_ES256 = ec.ECDSA(hashes.SHA256())


@functools.lru_cache(maxsize=64)
def _header(alg: str, kid: str, typ: str) -> str:
    """The encoded JOSE header, as PyJWT writes it (members sorted, no spaces): one per key and type."""
    return b64url(json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":"), sort_keys=True).encode())


def sign(ctx: Context, typ: str, claims: dict[str, Any]) -> str:
    """RFC 7515 compact serialisation. ES256 (the default key) is signed here, with the header encoded
    once per key and the claims by msgspec: PyJWT's general path cost ~30 µs more per token (measured),
    a tenth of a registration. Other algorithms go through PyJWT."""
    key = ctx.keys.current
    if key.alg != "ES256":
        return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"typ": typ, "kid": key.kid})
    signing_input = f"{_header(key.alg, key.kid, typ)}.{b64url(_CLAIMS.encode(claims))}"
    r, s = decode_dss_signature(key.private_key.sign(signing_input.encode("ascii"), _ES256))
    # RFC 7518 §3.4: the JWS signature is R and S as 32-byte big-endian integers, not DER.
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def mint(ctx: Context, typ: str, claims: dict[str, Any]) -> str:
    """Sign a token this service issues, and remember it as verified in this process."""
    token = sign(ctx, typ, claims)
    # What we just signed needs no signature check when it comes back to this process.
    if typ == TYP_ACCESS:
        ctx.access_cache.put(token, claims)
    elif typ == TYP_IDENTITY:
        ctx.assertion_cache.put(token, claims)
    return token


def verify(ctx: Context, token: str, *, typ: str, audiences: tuple[str, ...], error: str) -> dict[str, Any]:
    """Verify one of our own JWTs; any failure raises ``AuthError(error, …)`` with a safe description."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError(error, "the token is not a well-formed JWT") from exc
    # RFC 8725 §3.11: the type decides what a token may be used for; compare case-insensitively
    # (RFC 7515 §4.1.9 media types are case-insensitive).
    if str(header.get("typ", "")).lower() != typ:
        raise AuthError(error, f"the token is not of type {typ}")
    # RFC 8725 §3.1 / §2.1: the algorithm comes from our key, never from the token; `none` and HMAC
    # can never match an asymmetric key we hold.
    kid = header.get("kid")
    key = ctx.keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        ctx.reload_keys_if_changed()
        key = ctx.keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None or header.get("alg") != key.alg:
        raise AuthError(error, "the token was not signed by a key of this service")
    try:
        claims: dict[str, Any] = OWN_JWS.decode(token, key.public_key, algorithms=[key.alg])
    except jwt.InvalidSignatureError as exc:
        raise AuthError(error, "the token signature is invalid") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(error, f"the token lacks the {exc.claim} claim") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(error, "the token could not be decoded") from exc
    now = ctx.clock.now()
    if claims.get("iss") != ctx.settings.issuer:
        raise AuthError(error, "the token was issued by another issuer")
    aud = claims.get("aud")
    aud_list = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(a in audiences for a in aud_list):
        raise AuthError(error, "the token is not meant for this audience")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise AuthError(error, "the token's exp/iat are not numbers")
    if exp <= now:
        raise AuthError(error, "the token has expired")
    if iat > now + MAX_SKEW_SECONDS:
        raise AuthError(error, "the token was issued in the future")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + MAX_SKEW_SECONDS):
        raise AuthError(error, "the token is not valid yet")
    return claims


def grant_is_dead(state: AccessState | None, claims: dict[str, Any]) -> bool:
    """A token is dead when its grant is gone, revoked, pending, of another generation, or was issued
    at or before the grant's not_before (a provider's revocation event, RFC 8417)."""
    if state is None:
        return True
    reg = state.registration
    iat = claims.get("iat")
    return (
        reg.revoked_at is not None
        or reg.pending
        or reg.generation != claims.get("gen")
        or (reg.not_before is not None and isinstance(iat, int | float) and iat <= reg.not_before)
    )


def identity_assertion(ctx: Context, registration: Registration, account_id: str, expires_at: int) -> str:
    """Our own assertion type: presented to our token endpoint only (RFC 7523 §3: aud = our issuer)."""
    now = int(ctx.clock.now())
    return mint(
        ctx,
        TYP_IDENTITY,
        {
            "iss": ctx.settings.issuer,
            "sub": account_id,
            "aud": ctx.settings.issuer,
            "iat": now,
            "exp": expires_at,
            "jti": new_id("ida"),
            "reg": registration.id,
            "gen": registration.generation,
            "scope": " ".join(registration.scopes),
        },
    )
