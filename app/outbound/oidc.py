"""The operator's OpenID Connect sign-in provider over HTTP: its discovery document (OpenID Connect
Discovery 1.0), its token endpoint's answer, and its UserInfo response (OIDC Core §5.3).

Every request goes through ``fetch_json`` on the app's own client: no redirects, no proxies from the
environment, bounded in time and size. The discovery document is kept by a :class:`Discovery` that
``create_app`` builds, one per app, for ``METADATA_TTL_SECONDS`` of the injected clock; nothing is cached
in this module. What the answers mean for a sign-in is decided in app/flows/signin.py.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from app.clock import Clock
from app.errors import AuthError
from app.outbound.http import BadMediaType, BadStatus, BodyRefused, NotJson, fetch_json

METADATA_TTL_SECONDS = 3600
MAX_DOCUMENT_BYTES = 262_144
DISCOVERY_TIMEOUT_SECONDS = 10.0
TOKEN_TIMEOUT_SECONDS = 10.0
USERINFO_TIMEOUT_SECONDS = 10.0
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9.+-]{1,64}/[A-Za-z0-9.+-]{1,64}")
_REQUIRED = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def _fail(description: str) -> AuthError:
    return AuthError("invalid_grant", description, "Start the sign-in again.")


class Discovery:
    """The provider's discovery document per issuer, kept ``ttl`` seconds by the injected clock.

    Only a document that names the configured issuer and the endpoints a sign-in needs is kept; a
    failure is not, so the next sign-in asks again.
    """

    def __init__(self, http: httpx.AsyncClient, clock: Clock, ttl: float = METADATA_TTL_SECONDS) -> None:
        self._http = http
        self._clock = clock
        self._ttl = ttl
        self._documents: dict[str, tuple[float, dict[str, Any]]] = {}  # issuer → (expires_at, document)

    async def document(self, issuer: str) -> dict[str, Any]:
        cached = self._documents.get(issuer)
        if cached is not None and cached[0] > self._clock.now():
            return cached[1]
        doc = await _discovery_document(self._http, issuer + "/.well-known/openid-configuration")
        # Discovery §4.3: the issuer in the document must be exactly the one we were configured with.
        if doc.get("issuer") != issuer:
            raise AuthError("temporarily_unavailable", "the sign-in provider's discovery document names another issuer")
        for name in _REQUIRED:
            if not isinstance(doc.get(name), str):
                raise AuthError("temporarily_unavailable", f"the sign-in provider's discovery document lacks {name}")
        self._documents[issuer] = (self._clock.now() + self._ttl, doc)
        return doc


async def _discovery_document(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        got = await fetch_json(http, url, max_bytes=MAX_DOCUMENT_BYTES, timeout=DISCOVERY_TIMEOUT_SECONDS)
    except BadStatus as exc:
        raise AuthError("temporarily_unavailable", f"the sign-in provider answered {exc.status}") from None
    except (httpx.HTTPError, TimeoutError) as exc:
        raise AuthError("temporarily_unavailable", "the sign-in provider cannot be reached") from exc
    except BodyRefused as exc:
        raise AuthError("temporarily_unavailable", f"the sign-in provider's discovery document is {exc}") from None
    except NotJson:
        got = None
    if got is None or not isinstance(got.document, dict):
        raise AuthError("temporarily_unavailable", "the sign-in provider's discovery document is not an object")
    return got.document


async def token_response(
    http: httpx.AsyncClient, endpoint: str, body: str, headers: dict[str, str]
) -> tuple[int, object]:
    """(status, decoded JSON body or None) of a token request (RFC 6749 §4.1.3) POSTed to ``endpoint``;
    an error answer is JSON too (§5.2), so any status is read."""
    try:
        got = await fetch_json(
            http,
            endpoint,
            method="POST",
            content=body,
            headers=headers,
            max_bytes=MAX_DOCUMENT_BYTES,
            timeout=TOKEN_TIMEOUT_SECONDS,
            any_status=True,
        )
    except (httpx.HTTPError, TimeoutError) as exc:
        raise AuthError("temporarily_unavailable", "the sign-in provider cannot be reached") from exc
    except BodyRefused as exc:
        raise _fail(f"the sign-in provider's token response is {exc}") from None
    except NotJson as exc:
        return exc.status, None
    return got.status, got.document


async def userinfo(http: httpx.AsyncClient, endpoint: str, access_token: str, subject: str) -> dict[str, Any]:
    """The UserInfo response (OIDC Core §5.3.1-5.3.2) as a JSON object about ``subject``. A signed or
    encrypted response (`application/jwt`, for a client registered with `userinfo_signed_response_alg`) is
    refused: authmd reads the plain JSON that providers send by default, and says so rather than failing
    obscurely."""
    # RFC 6750 §2.1; never in the URL, where logs would keep it.
    headers = {"Authorization": f"Bearer {access_token}"}
    unavailable = "the sign-in provider's UserInfo endpoint"
    try:
        got = await fetch_json(
            http,
            endpoint,
            headers=headers,
            max_bytes=MAX_DOCUMENT_BYTES,
            timeout=USERINFO_TIMEOUT_SECONDS,
            media_type=lambda found: found == "application/json",
        )
    except BadStatus as exc:
        code = "temporarily_unavailable" if exc.status >= 500 else "invalid_grant"
        raise AuthError(code, f"{unavailable} answered {exc.status}", "Start the sign-in again.") from None
    except BadMediaType as exc:
        if exc.media_type == "application/jwt":
            raise AuthError(
                "invalid_grant",
                "the sign-in provider sends signed or encrypted UserInfo (application/jwt), which this service "
                "does not read: its operator should set the client at the provider to plain JSON UserInfo",
                "Tell the operator of this service.",
            ) from None
        shown = f" ({exc.media_type})" if _MEDIA_TYPE.fullmatch(exc.media_type) else ""
        raise _fail(f"the sign-in provider's UserInfo response is not JSON{shown}") from None
    except BodyRefused as exc:
        raise _fail(f"the sign-in provider's UserInfo response is {exc}") from None
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise AuthError("temporarily_unavailable", f"{unavailable} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise AuthError("temporarily_unavailable", f"{unavailable} cannot be reached") from exc
    except NotJson:
        got = None
    info = got.document if got is not None else None
    if not isinstance(info, dict):
        raise _fail("the sign-in provider's UserInfo response is not a JSON object")
    # §5.3.2: the `sub` in the UserInfo response MUST be exactly the ID token's; else its claims are about
    # someone else (a token substitution) and MUST NOT be used.
    if info.get("sub") != subject:
        raise _fail("the sign-in provider's UserInfo response is about another subject than its ID token")
    return info
