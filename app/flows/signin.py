"""Human sign-in at the operator's OpenID Connect provider (or, in dev mode without one, a labelled
development form).

The authorization-code flow with PKCE S256 (RFC 7636), built with Authlib's OAuth 2.0 primitives; the
provider is asked over the process's own HTTP client through app/outbound/oidc.py (no redirects followed,
no proxies from the environment, bounded in time and size), and this module decides what the answers mean:
``state`` and ``nonce`` live in the browser's session, the redirect URI is exactly
``{issuer}/oidc/callback``, the RFC 9207 ``iss`` response parameter is checked, and the ID token is
validated in full (OIDC Core §3.1.3.7) against the provider's JWKS through the same cache that
serves agent identity providers. The email claims come from the ID token, or, for what it lacks, from
the provider's UserInfo endpoint (§5.3; a conformant provider that issues an access token puts the
scope's claims there only, §5.4). The provider is authoritative for humans: a sign-in with a verified
email becomes the user with that lower-cased email, however that user first appeared.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jwt
import msgspec
from authlib.oauth2.auth import encode_client_secret_basic
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from app import text
from app.config import ASYMMETRIC_ALGS
from app.context import Context
from app.errors import AuthError
from app.flows.register import new_person
from app.flows.session import LOGIN_TTL_SECONDS, LoginState, Session
from app.outbound import oidc
from app.store.port import User
from app.tokens import SIGNATURE_ONLY, jose_segment

DEV_ISSUER = "urn:authmd:dev-sign-in"
CALLBACK = "/oidc/callback"
# RFC 3986 §2.2-2.3: reserved and unreserved characters, plus `%` of an existing percent-encoding.
_URI_CHARACTERS = "/?#[]@!$&'()*+,;=:%-._~"


def redirect_uri(ctx: Context) -> str:
    return ctx.settings.issuer_str + CALLBACK


def safe_return_to(value: str | None) -> str:
    """Only our own paths: an absolute path, never ``//host`` or a backslash trick (open redirects), no
    control characters (header injection). What a URI cannot carry as it is gets percent-encoded as
    UTF-8 (RFC 3986 §2.1, RFC 3987 §3.1), so the result is ASCII and fits a Location header."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2048:
        return "/account"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or urlsplit(value).netloc:
        return "/account"
    try:
        encoded = quote(value, safe=_URI_CHARACTERS)  # idempotent: `%` is kept
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
        return "/account"
    return encoded if len(encoded) <= 2048 else "/account"


def _fail(description: str) -> AuthError:
    return AuthError("invalid_grant", description, "Start the sign-in again.")


async def metadata(ctx: Context) -> dict[str, Any]:
    """The provider's discovery document (OpenID Connect Discovery 1.0), kept by the app (app/outbound/oidc.py)."""
    issuer = ctx.settings.oidc_issuer
    assert issuer is not None
    return await ctx.oidc.document(issuer)


async def begin(ctx: Context, session: Session, return_to: str, *, prompt: str | None = None) -> tuple[str, Session]:
    """The authorization request URL, and the session now holding its state, nonce and verifier."""
    meta = await metadata(ctx)
    login = LoginState(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(48),  # RFC 7636 §4.1: 43-128 characters of high entropy
        return_to=safe_return_to(return_to),
        started_at=int(ctx.clock.now()),
    )
    s = ctx.settings
    assert s.oidc_client_id is not None
    extra: dict[str, str] = {"prompt": prompt} if prompt else {}
    url = prepare_grant_uri(
        meta["authorization_endpoint"],
        s.oidc_client_id,
        "code",
        redirect_uri=redirect_uri(ctx),
        scope=" ".join(s.oidc_scopes),
        state=login.state,
        nonce=login.nonce,
        code_challenge=create_s256_code_challenge(login.verifier),
        code_challenge_method="S256",
        **extra,
    )
    return url, Session(session.cookie, msgspec.structs.replace(session.data, login=login))


async def finish(ctx: Context, login: LoginState | None, params: dict[str, str]) -> User:
    """The callback: check the response, redeem the code, validate the ID token, find the user."""
    if login is None or ctx.clock.now() - login.started_at > LOGIN_TTL_SECONDS:
        raise _fail("no sign-in is in progress in this browser, or it took too long")
    if not hmac.compare_digest(login.state.encode(), params.get("state", "").encode()):  # bytes: any text
        raise _fail("the sign-in response does not belong to this browser (state mismatch)")
    meta = await metadata(ctx)
    s = ctx.settings
    # RFC 9207 §2.4: a provider that advertises `iss` in responses must send it, and it must match.
    iss = params.get("iss")
    if (iss is None and meta.get("authorization_response_iss_parameter_supported")) or (
        iss is not None and iss != s.oidc_issuer
    ):
        raise _fail("the sign-in response came from another issuer (RFC 9207)")
    if "error" in params:
        raise AuthError("invalid_grant", f"the sign-in provider refused: {params['error'][:100]}", "Try again.")
    code = params.get("code")
    if not code:
        raise _fail("the sign-in response carries no code")
    id_token, access_token = await _redeem(ctx, meta, code, login.verifier)
    claims = await validate_id_token(ctx, meta, id_token, login.nonce)
    email, verified = await _email_claims(ctx, meta, claims, access_token)
    if not isinstance(email, str) or "@" not in email:
        raise _no_email("")
    if s.oidc_require_verified_email and verified is not True:
        raise AuthError(
            "invalid_grant", "the sign-in provider has not verified this email address", "Verify your email there."
        )
    # Checked before anyone is looked up or created: a provider's word does not make an address with
    # hidden or reordering characters safe to show and compare (app/text.py).
    email = text.email(
        email, "invalid_grant", "the sign-in provider's email address", "Sign in with an account with a plain email."
    )
    assert s.oidc_issuer is not None
    return await _user_for(ctx, s.oidc_issuer, claims["sub"], email)


def _no_email(why: str) -> AuthError:
    return AuthError(
        "invalid_grant", f"the sign-in provider gave no email address{why}", "Use an account with an email."
    )


async def _email_claims(
    ctx: Context, meta: dict[str, Any], claims: dict[str, Any], access_token: str | None
) -> tuple[object, object]:
    """``email`` and ``email_verified``: the ID token's, and what it lacks from UserInfo.

    OIDC Core §5.4: when an access token is issued, a provider may return the claims of the `email` scope
    from the UserInfo endpoint only (oidc-provider and others do, by default), so an ID token without them
    is normal. The ID token's claims take precedence: UserInfo is asked only for what it lacks (absent or
    null, §5.3.2)."""
    email, verified = claims.get("email"), claims.get("email_verified")
    if email is not None and (verified is not None or not ctx.settings.oidc_require_verified_email):
        return email, verified
    if not isinstance(meta.get("userinfo_endpoint"), str):
        if email is None:
            raise _no_email(" in the ID token and has no UserInfo endpoint")
        return email, verified
    if access_token is None:
        raise _no_email(" in the ID token and issued no Bearer access token for its UserInfo endpoint")
    info = await oidc.userinfo(ctx.http, meta["userinfo_endpoint"], access_token, claims["sub"])
    if email is None:  # the pair from UserInfo: an `email_verified` without its address says nothing
        if info.get("email") is None:
            raise _no_email(", neither in the ID token nor from UserInfo")
        return info.get("email"), info.get("email_verified")
    # `email_verified` is about one address: UserInfo's counts only when it is about the ID token's.
    return email, (info.get("email_verified") if info.get("email") == email else None)


async def _redeem(ctx: Context, meta: dict[str, Any], code: str, verifier: str) -> tuple[str, str | None]:
    """(ID token, the access token if it is a Bearer token) from the token endpoint."""
    s = ctx.settings
    assert s.oidc_client_id is not None and s.oidc_client_secret is not None
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri(ctx), code_verifier=verifier
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    client = _Client(s.oidc_client_id, s.oidc_client_secret.reveal())
    if "client_secret_basic" in methods:
        _, headers, body = encode_client_secret_basic(client, "POST", meta["token_endpoint"], headers, body)
    else:  # client_secret_post
        body += "&" + urlencode({"client_id": client.client_id, "client_secret": client.client_secret})
    status, tokens = await oidc.token_response(ctx.http, meta["token_endpoint"], body, headers)
    if status != 200 or not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
        error = tokens.get("error") if isinstance(tokens, dict) else None
        raise _fail(f"the sign-in provider did not redeem the code ({error or status})")
    id_token: str = tokens["id_token"]
    access_token = tokens.get("access_token")
    # RFC 6749 §5.1: token_type is case-insensitive; only a Bearer token may be sent as one (RFC 6750).
    bearer = isinstance(access_token, str) and str(tokens.get("token_type", "")).lower() == "bearer"
    return id_token, access_token if bearer else None


class _Client:
    """What Authlib's client-authentication helper reads."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret


async def validate_id_token(ctx: Context, meta: dict[str, Any], token: str, nonce: str) -> dict[str, Any]:
    """OpenID Connect Core §3.1.3.7, every step that applies to a confidential client."""
    s = ctx.settings
    header = jose_segment(token, 0)
    alg = header.get("alg")
    # §3.1.3.7 (6-8) and RFC 8725 §3.1: an asymmetric algorithm the provider lists; never none or a MAC.
    allowed = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
    if alg not in ASYMMETRIC_ALGS or alg not in allowed:
        raise _fail("the ID token is not signed with an accepted algorithm")
    kid = header.get("kid")
    key = await ctx.jwks.key(meta["jwks_uri"], kid if isinstance(kid, str) else None, alg)
    try:
        claims: dict[str, Any] = SIGNATURE_ONLY.decode(token, key, algorithms=[alg])
    except jwt.PyJWTError as exc:
        raise _fail("the ID token's signature does not verify") from exc
    now = ctx.clock.now()
    if claims.get("iss") != s.oidc_issuer:  # (2)
        raise _fail("the ID token's issuer is not the configured provider")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if s.oidc_client_id not in audiences:  # (3)
        raise _fail("the ID token was not issued to this service")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != s.oidc_client_id:  # (4, 5)
        raise _fail("the ID token's authorized party is not this service")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or exp <= now - s.clock_skew_seconds:  # (9)
        raise _fail("the ID token has expired")
    if not isinstance(iat, int | float) or iat > now + s.clock_skew_seconds:  # (10)
        raise _fail("the ID token was issued in the future")
    nonce_claim = claims.get("nonce")
    if not isinstance(nonce_claim, str) or not hmac.compare_digest(nonce_claim.encode(), nonce.encode()):  # (11)
        raise _fail("the ID token's nonce does not match this sign-in")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise _fail("the ID token has no subject")
    return claims


async def _user_for(ctx: Context, issuer: str, subject: str, email: str) -> User:
    user, account = new_person(ctx, email)  # used only if neither (iss, sub) nor the email is known
    return await ctx.store.sign_in_user(issuer, subject, email, user, account)


# The "issuer" of people the operator's own login vouches for (claims confirmed through the admin API).
OPERATOR_LOGIN = "urn:authmd:operator-login"


async def operator_user(ctx: Context, email: str, external_id: str | None) -> User:
    """The person the operator's own login signed in, as a sign-in finds them: the one linked to their
    ``external_id`` (their email when none is given), else the one with this email, else a new one."""
    return await _user_for(ctx, OPERATOR_LOGIN, external_id or email, email)


async def dev_sign_in(ctx: Context, email: str) -> User:
    """Dev mode without a provider: any email, clearly labelled on the page as not a real sign-in."""
    if not ctx.settings.dev_mode or ctx.settings.oidc_issuer is not None:
        raise AuthError("not_found", "development sign-in is only available in dev mode without a provider")
    email = text.email(email, "invalid_request", "the email")
    return await _user_for(ctx, DEV_ISSUER, email, email)
