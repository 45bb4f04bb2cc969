"""Verifying an ID-JAG: an Identity Assertion JWT Authorization Grant from a trusted agent identity
provider (draft-ietf-oauth-identity-assertion-authz-grant, "the draft" below; spec/protocol.md).

Every check raises the specific code of spec/protocol.md's table; nothing is stored before the signature
verifies, and the replay mark is the last step. Order matters for abuse: size and header first (free),
then the trust list, then one JWKS lookup and one signature check, then the claims.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import jwt
import msgspec

from app import observe, text
from app.config import ASYMMETRIC_ALGS, Provider
from app.context import Context
from app.errors import AuthError
from app.tokens import SIGNATURE_ONLY, jose_segment

TYP_ID_JAG = "oauth-id-jag+jwt"


class IdJag(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified ID-JAG tells us."""

    provider: Provider
    subject: str
    identifier: str  # the verified, lower-cased email, or "tel:" + the verified phone number
    client_id: str
    scopes: tuple[str, ...]
    jti: str
    iat: int
    exp: int


def _number(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError("invalid_request", f"the {name} claim must be a number")
    return int(value)


async def verify_id_jag(ctx: Context, token: str, *, record_replay: bool = True) -> IdJag:
    """The ID-JAG verified, or the refusal, logged and counted with its reason and (when on the trust
    list) its provider."""
    try:
        return await _verify(ctx, token, record_replay)
    except AuthError as exc:
        if exc.status < 500:
            observe.idjag_refused(ctx.tally, _trusted_issuer(ctx, token), exc.code, exc.description, ctx.clock.now())
        raise


def _trusted_issuer(ctx: Context, token: str) -> str | None:
    try:
        provider = ctx.settings.provider(str(jose_segment(token, 1).get("iss", "")))
    except AuthError:
        return None
    return provider.issuer if provider else None


async def _verify(ctx: Context, token: str, record_replay: bool) -> IdJag:
    s = ctx.settings
    if len(token) > s.idjag_max_bytes:
        raise AuthError("invalid_request", f"the assertion is larger than {s.idjag_max_bytes} bytes")
    header = jose_segment(token, 0)
    # RFC 8725 §3.11 / the draft: the type says what the token is for. An access token, our own
    # identity assertion or a security event token is never an ID-JAG.
    if str(header.get("typ", "")).lower() != TYP_ID_JAG:
        raise AuthError("invalid_request", f"the assertion is not an ID-JAG (typ must be {TYP_ID_JAG})")
    alg = header.get("alg")
    # RFC 8725 §3.1: never `none`, never a MAC keyed with what might be a public key.
    if alg not in ASYMMETRIC_ALGS:
        raise AuthError("invalid_signature", "the assertion's algorithm is not an accepted asymmetric one")
    # jku, x5u and jwk headers are never followed: keys come only from the trusted provider's JWKS.
    unverified = jose_segment(token, 1)
    provider = s.provider(str(unverified.get("iss", "")))
    if provider is None:
        raise AuthError("issuer_not_enabled", "the assertion's issuer is not a trusted agent identity provider")
    if alg not in provider.algorithms:
        raise AuthError("invalid_signature", f"{provider.display_name} does not sign with {alg} here")
    kid = header.get("kid")
    key = await ctx.jwks.key(provider.jwks_url, kid if isinstance(kid, str) else None, alg)
    try:
        claims: dict[str, Any] = SIGNATURE_ONLY.decode(token, key, algorithms=[alg])
    except jwt.InvalidSignatureError as exc:
        raise AuthError("invalid_signature", "the assertion's signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise AuthError("invalid_request", "the assertion could not be decoded") from exc

    now = ctx.clock.now()
    if claims.get("iss") != provider.issuer:
        raise AuthError("issuer_not_enabled", "the assertion's issuer is not a trusted agent identity provider")
    # The draft: aud is the issuer identifier of the authorization server (spec/id-jag-audience.md).
    aud = claims.get("aud")
    if aud != s.issuer and aud != [s.issuer]:
        raise AuthError("invalid_audience", f"the assertion's aud must be this issuer, {s.issuer}")
    exp, iat, nbf = _number(claims, "exp"), _number(claims, "iat"), _number(claims, "nbf")
    if exp is None or iat is None:
        raise AuthError("invalid_request", "the assertion lacks exp or iat")
    if exp <= now:
        raise AuthError("expired", "the assertion has expired")
    if iat > now + s.clock_skew_seconds or (nbf is not None and nbf > now + s.clock_skew_seconds):
        raise AuthError("invalid_request", "the assertion was issued in the future")
    sub, jti = claims.get("sub"), claims.get("jti")
    if not isinstance(sub, str) or not sub or not isinstance(jti, str) or not jti:
        raise AuthError("invalid_request", "the assertion lacks sub or jti")
    if "cnf" in claims:
        raise AuthError("invalid_request", "sender-constrained ID-JAGs (cnf) are not supported")
    client_id = await _check_client(ctx, provider, claims.get("client_id"))
    identifier = _verified_identifier(claims)
    _check_authentication(provider, claims, now, ctx.settings.idjag_max_age_seconds)
    scopes = _granted_scopes(provider, claims.get("scope"))
    # Written only now, after the signature and every claim checked out, so a forged token can never
    # burn a genuine jti; shared by every instance through the store.
    if record_replay and not await ctx.store.consume_once(
        "idjag", f"{provider.issuer}\n{jti}", exp + s.clock_skew_seconds, now
    ):
        raise AuthError("replay_detected", "this assertion (its jti) was already used")
    return IdJag(
        provider=provider,
        subject=sub,
        identifier=identifier,
        client_id=client_id,
        scopes=scopes,
        jti=jti,
        iat=iat,
        exp=exp,
    )


async def _check_client(ctx: Context, provider: Provider, client_id: Any) -> str:
    if not isinstance(client_id, str) or not client_id:
        raise AuthError("invalid_client_id", "the assertion lacks client_id")
    is_url = urlsplit(client_id).scheme in ("https", "http")
    if client_id not in provider.client_ids and not (is_url and provider.cimd):
        raise AuthError("invalid_client_id", f"{provider.display_name} may not vouch for this client_id")
    if is_url:
        # A URL client_id is a Client ID Metadata Document: fetch and check it (SSRF-guarded).
        await ctx.cimd.get(
            client_id,
            allow_http=ctx.settings.dev_mode,
            allow_private=ctx.settings.cimd_allow_private,
        )
    return client_id


def _verified_identifier(claims: dict[str, Any]) -> str:
    email, phone = claims.get("email"), claims.get("phone_number")
    if isinstance(email, str) and "@" in email and claims.get("email_verified") is True:
        # A verified but unsafe address is refused, not passed over for the phone number: the
        # provider vouched for exactly this string (app/text.py).
        return text.email(email, "missing_verified_email", "the assertion's verified email")
    if isinstance(phone, str) and phone and claims.get("phone_number_verified") is True:
        return "tel:" + text.phone(phone, "missing_verified_email", "the assertion's verified phone_number")
    raise AuthError("missing_verified_email", "the assertion carries no verified email (or phone number)")


def _check_authentication(provider: Provider, claims: dict[str, Any], now: float, default_max_age: int) -> None:
    # A stale provider login is refused by default (the reference service: 3600 s), a missing auth_time
    # too, since nothing then says how fresh the login is; a provider's own max_age overrides the default.
    # The answer carries max_age (OIDC Core §3.1.2.1's parameter) so the agent can ask for a fresh login.
    max_age = provider.max_age if provider.max_age is not None else default_max_age
    auth_time = _number(claims, "auth_time")
    if auth_time is None or now - auth_time > max_age:
        raise AuthError(
            "login_required",
            "the user's sign-in at the provider is older than this service accepts"
            if auth_time is not None
            else "the assertion does not say when the user signed in at the provider (auth_time)",
            f"Have the user sign in again at {provider.display_name}, then send a fresh ID-JAG.",
            extra={"max_age": max_age},
        )
    if provider.required_amr:
        amr = claims.get("amr")
        methods = set(amr) if isinstance(amr, list) else set()
        if not set(provider.required_amr) <= methods:
            raise AuthError(
                "login_required",
                f"this service needs the user to have signed in with {', '.join(provider.required_amr)}",
                f"Have the user sign in again at {provider.display_name} with the required method.",
            )


def _granted_scopes(provider: Provider, requested: Any) -> tuple[str, ...]:
    """At most the provider's configured scopes, narrowed by the ID-JAG's own scope claim."""
    if requested is None:
        return tuple(provider.scopes)
    if not isinstance(requested, str):
        raise AuthError("invalid_request", "the scope claim must be a space-separated string")
    asked = set(requested.split())
    granted = tuple(s for s in provider.scopes if s in asked)
    if not granted:
        raise AuthError("invalid_scope", "the assertion asks for no scope this provider may grant here")
    return granted
