"""The protocol, client side: discovery, registration, token exchange, the claim, refresh, revocation."""

from __future__ import annotations

import base64
import binascii
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.protocol import AS_METADATA, JWT_BEARER, URN_ID_JAG, SolveCancelled, origin, solve

MAX_BODY = 1_048_576
# A 429 that asks for at most this many seconds is waited out and the request sent once more.
MAX_RETRY_WAIT = 10.0
# spec/protocol.md revision 2 renamed these; a revision 1 service still sends the old names.
REVISION_1_NAMES = {
    "anonymous_not_enabled": "anonymous_registration_disabled",
    "service_auth_not_enabled": "service_auth_registration_disabled",
    "rate_limited": "rate_limit_exceeded",
}

# The claim's end, when the status endpoint answers it as an error rather than as a status.
CLAIM_ENDED = {
    "claim_revoked": "revoked",
    "claim_denied": "denied",
    "claim_expired": "expired",
    "already_claimed": "claimed",
}


class ClientError(Exception):
    """The service could not be reached, or answered something that is not the protocol."""


class ServiceError(Exception):
    """The service refused, with the protocol's error body: ``error``, and ``message`` or
    ``error_description`` (revision 2 sends both, the same text), and authmd's ``hint``.

    ``kind`` is the revision 2 name of ``code`` (``rate_limited`` → ``rate_limit_exceeded``);
    ``retry_after`` the seconds a 429 or 503 asks to wait (body ``retry_after``, else ``Retry-After``)."""

    def __init__(self, status: int, body: dict[str, Any], headers: httpx.Headers | None = None) -> None:
        self.status = status
        self.body = body
        self.code = str(body.get("error", "error"))
        self.kind = REVISION_1_NAMES.get(self.code, self.code)
        self.description = _text(body.get("message")) or _text(body.get("error_description"))
        self.hint = _text(body.get("hint"))
        self.retry_after = retry_after(body, headers)
        super().__init__(f"{self.code}: {self.description}" if self.description else self.code)


def transport_reason(exc: BaseException) -> str:
    """Why a request got no HTTP answer, in words ("connection refused", "name not resolved", "TLS
    failure: ...", "timed out"), read from the OS or TLS error under httpx's; else the error as it is.
    Shared by `authmd agent` and `authmd doctor`."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS failure: certificate verify failed ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failure: {(cause.reason or str(cause)).replace('_', ' ').lower()}"
        if isinstance(cause, socket.gaierror):
            return f"name not resolved ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def retry_after(body: Any, headers: httpx.Headers | None) -> float | None:
    """Seconds to wait: the body's numeric ``retry_after`` (revision 2), else the ``Retry-After`` header
    (delay-seconds or an HTTP-date, RFC 9110 §10.2.3); None when neither says."""
    value = body.get("retry_after") if isinstance(body, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    header = headers.get("retry-after", "").strip() if headers is not None else ""
    if header.isdigit():
        return float(header)
    if header:
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is not None:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def rate_limited(exc: Exception) -> bool:
    return isinstance(exc, ServiceError) and exc.kind == "rate_limit_exceeded"


@dataclass(frozen=True)
class Service:
    """What discovery learned: the issuer and its RFC 8414 metadata (with the ``agent_auth`` block)."""

    issuer: str
    metadata: dict[str, Any]
    resource: str | None = None

    @property
    def agent_auth(self) -> dict[str, Any]:
        block = self.metadata.get("agent_auth")
        return block if isinstance(block, dict) else {}

    def endpoint(self, name: str) -> str:
        value = self.agent_auth.get(name) if name not in self.metadata else self.metadata[name]
        if not isinstance(value, str):
            raise ClientError(f"the service's metadata has no {name}")
        return value

    @property
    def identity_types(self) -> list[str]:
        types = self.agent_auth.get("identity_types_supported")
        return [t for t in types if isinstance(t, str)] if isinstance(types, list) else []

    @property
    def trusted_issuers(self) -> dict[str, str] | None:
        """Revision 2's trust list, ``identity_assertion.issuers_supported``: {issuer: name}; None when the
        service does not publish one (then only trying tells)."""
        block = self.agent_auth.get("identity_assertion")
        entries = block.get("issuers_supported") if isinstance(block, dict) else None
        if not isinstance(entries, list):
            return None
        return {
            e["issuer"]: str(e.get("name") or e["issuer"])
            for e in entries
            if isinstance(e, dict) and isinstance(e.get("issuer"), str)
        }


def unverified_issuer(jwt: str) -> str | None:
    """The ``iss`` of a compact JWS, read without verifying anything (to pick a service's trust list
    entry before sending it; the service verifies)."""
    parts = jwt.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    iss = payload.get("iss") if isinstance(payload, dict) else None
    return iss if isinstance(iss, str) else None


def solve_proof_of_work(
    challenge: str,
    difficulty: int,
    progress: Callable[[int, int], None] | None = None,
    *,
    cancel: threading.Event | None = None,
) -> str:
    """The first decimal nonce with SHA-256(challenge ":" nonce) below the target (spec/protocol.md).

    ``progress(tried, expected)`` is called every 65,536 tries, from the solving thread. Run it off
    an event loop (``asyncio.to_thread``) in async code: it is pure CPU."""
    try:
        return solve(challenge, difficulty, progress=progress, cancel=cancel)
    except SolveCancelled:
        raise ClientError("proof of work cancelled") from None


_RESOURCE_METADATA = re.compile(r'resource_metadata="([^"]+)"')


class Client:
    """Synchronous and small: one ``httpx.Client`` (no redirects followed, no proxies from the environment).

    A rate limit (429 ``rate_limit_exceeded``, or revision 1's ``rate_limited``) on a request that is safe
    to repeat (registration without an ID-JAG, token exchange, claim start and status, revocation) is
    waited out once when it asks for at most ``max_retry_wait`` seconds; ``on_wait(seconds)`` is told
    first. A longer wait, or a second 429, is the ``ServiceError`` (its ``retry_after`` says how long)."""

    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        timeout: float = 15.0,
        max_retry_wait: float = MAX_RETRY_WAIT,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.http = http or httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
        self.max_retry_wait = max_retry_wait
        self.on_wait = on_wait

    def close(self) -> None:
        self.http.close()

    # ---- transport ------------------------------------------------------------------------------
    def _send(self, method: str, url: str, *, retry: bool = False, **kwargs: Any) -> httpx.Response:
        response = self._send_once(method, url, **kwargs)
        if retry and response.status_code == 429:
            wait = self._short_rate_limit(response)
            if wait is not None:
                if self.on_wait is not None:
                    self.on_wait(wait)
                time.sleep(wait)  # what the service asked for (a 429 means nothing was done)
                response = self._send_once(method, url, **kwargs)
        return response

    def _send_once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {origin(url)}: {transport_reason(exc)}") from exc

    def _short_rate_limit(self, response: httpx.Response) -> float | None:
        """The wait a 429 rate limit asks for, when it is short enough to wait out (else None)."""
        try:
            body = response.json() if len(response.content) <= MAX_BODY else None
        except ValueError:
            body = None
        code = body.get("error") if isinstance(body, dict) else None
        if isinstance(code, str) and REVISION_1_NAMES.get(code, code) != "rate_limit_exceeded":
            return None  # e.g. too_many_attempts: waiting a few seconds changes nothing
        wait = retry_after(body, response.headers)
        return wait if wait is not None and wait <= self.max_retry_wait else None

    def _json(self, response: httpx.Response) -> Any:
        if len(response.content) > MAX_BODY:
            raise ClientError(f"{response.request.url} answered more than {MAX_BODY} bytes")
        try:
            return response.json()
        except ValueError as exc:
            raise ClientError(f"{response.request.url} answered {response.status_code} without JSON") from exc

    def _checked(self, response: httpx.Response, *, ok: tuple[int, ...] = (200,)) -> dict[str, Any]:
        body = self._json(response)
        if not isinstance(body, dict):
            raise ClientError(f"{response.request.url} answered a JSON value that is not an object")
        if response.status_code not in ok:
            raise ServiceError(response.status_code, body, response.headers)
        return body

    def post_json(
        self, url: str, body: dict[str, Any], *, ok: tuple[int, ...] = (200,), retry: bool = False
    ) -> dict[str, Any]:
        return self._checked(self._send("POST", url, json=body, retry=retry), ok=ok)

    # ---- discovery ------------------------------------------------------------------------------
    def discover(self, url: str) -> Service:
        """From an API URL (its 401 names RFC 9728 metadata, which names the issuer) or an issuer."""
        url = url.rstrip("/")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ClientError(f"{url!r} is not an http(s) URL")
        resource = None
        probe = self._send("GET", url, headers={"Accept": "application/json"})
        challenge = probe.headers.get("www-authenticate", "")
        found = _RESOURCE_METADATA.search(challenge) if probe.status_code == 401 else None
        issuer = url
        if found:
            prm = self._checked(self._send("GET", found.group(1)))
            servers = prm.get("authorization_servers")
            if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
                raise ClientError("the protected-resource metadata names no authorization server")
            issuer, resource = servers[0], prm.get("resource")
        # The official client appends the suffix to the issuer string; RFC 8414 §3.3: issuer must match.
        metadata = self._checked(self._send("GET", issuer + AS_METADATA))
        if metadata.get("issuer") != issuer:
            raise ClientError(f"the metadata at {issuer}{AS_METADATA} names another issuer (RFC 8414 §3.3)")
        return Service(issuer=issuer, metadata=metadata, resource=resource if isinstance(resource, str) else None)

    def auth_md(self, service: Service) -> str:
        skill = service.agent_auth.get("skill") or service.issuer + "/auth.md"
        response = self._send("GET", skill, headers={"Accept": "text/markdown"})
        return response.text if response.status_code == 200 else ""

    # ---- registration ---------------------------------------------------------------------------
    def register(
        self,
        service: Service,
        body: dict[str, Any] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """``POST {identity_endpoint}`` (anonymous unless ``body`` says otherwise). A proof of work the
        service asks for is solved and the request sent once more (spec/protocol.md § Proof of work)."""
        body = dict(body or {"type": "anonymous"})
        url = service.endpoint("identity_endpoint")
        response = self._send("POST", url, json=body, retry=True)
        if response.status_code == 400:
            error = self._checked(response, ok=(200, 400))
            if error.get("error") in ("proof_of_work_required", "invalid_proof_of_work"):
                ch = error.get("challenge")
                if not isinstance(ch, dict) or not isinstance(ch.get("challenge"), str):
                    raise ServiceError(400, error, response.headers)
                nonce = solve_proof_of_work(ch["challenge"], int(ch.get("difficulty", 0)), progress)
                body["proof_of_work"] = {"challenge": ch["challenge"], "nonce": nonce}
                response = self._send("POST", url, json=body, retry=True)
            else:
                raise ServiceError(400, error, response.headers)
        return self._checked(response)

    def register_service_auth(self, service: Service, email: str, **kwargs: Any) -> dict[str, Any]:
        if "service_auth" not in service.identity_types:
            raise ClientError("this service does not offer service_auth registration (see its /auth.md)")
        return self.register(service, {"type": "service_auth", "login_hint": email}, **kwargs)

    def register_id_jag(self, service: Service, assertion: str) -> dict[str, Any]:
        """An ID-JAG from the agent's platform; a 401 ``interaction_required`` is a flow, returned as is."""
        body = {"type": "identity_assertion", "assertion_type": URN_ID_JAG, "assertion": assertion}
        response = self._send("POST", service.endpoint("identity_endpoint"), json=body)
        result = self._checked(response, ok=(200, 401))
        if response.status_code == 401 and result.get("error") != "interaction_required":
            raise ServiceError(401, result, response.headers)
        return result

    def refresh(self, service: Service, refresh_token: str) -> dict[str, Any]:
        return self.post_json(
            service.endpoint("identity_endpoint"), {"type": "refresh", "refresh_token": refresh_token}
        )

    # ---- tokens ---------------------------------------------------------------------------------
    def exchange(self, service: Service, assertion: str) -> dict[str, Any]:
        """RFC 7523 JWT-bearer grant at the token endpoint."""
        form = {"grant_type": JWT_BEARER, "assertion": assertion}
        token = self._checked(self._send("POST", service.endpoint("token_endpoint"), data=form, retry=True))
        if not isinstance(token.get("access_token"), str) or not isinstance(token.get("expires_in"), int | float):
            raise ClientError("the token endpoint answered without access_token or a numeric expires_in")
        return token

    def revoke(self, service: Service, token: str) -> None:
        """RFC 7009: always 200 when the endpoint exists."""
        url = service.metadata.get("revocation_endpoint")
        if not isinstance(url, str):
            raise ClientError("the service publishes no revocation endpoint")
        response = self._send("POST", url, data={"token": token}, retry=True)
        if response.status_code != 200:
            self._checked(response)

    # ---- the claim --------------------------------------------------------------------------------
    def start_claim(self, claim_url: str, claim_token: str, email: str | None) -> dict[str, Any]:
        """A new attempt. Revision 2: earlier attempts stay live, up to the service's cap; one more is
        429 ``too_many_attempts`` (raised as a ServiceError)."""
        body: dict[str, Any] = {"type": "service_auth", "claim_token": claim_token}
        if email:
            body["login_hint"] = email
        started = self.post_json(claim_url, body, retry=True)
        attempt = started.get("attempt")
        if not isinstance(attempt, dict) or not isinstance(attempt.get("verification_uri"), str):
            raise ClientError("the claim endpoint answered without attempt.verification_uri")
        return started

    def claim_status(self, claim_url: str, claim_token: str) -> str | None:
        """*ext* status: ``pending``, ``confirmed``, ``claimed``, ``expired``, ``revoked`` or (revision 2)
        ``denied``; None when the service has no status endpoint."""
        response = self._send("POST", claim_url + "/status", json={"claim_token": claim_token}, retry=True)
        if response.status_code == 404:
            return None
        try:
            status = self._checked(response).get("status")
        except ServiceError as exc:
            if exc.code in CLAIM_ENDED:
                return CLAIM_ENDED[exc.code]
            raise
        return status if isinstance(status, str) else None

    def complete_claim(self, claim_url: str, claim_token: str, code: str) -> dict[str, Any]:
        """The code as the human read it (trimmed): a revision 2 service ignores spaces and hyphens."""
        return self.post_json(claim_url + "/complete", {"claim_token": claim_token, "user_code": code.strip()})

    # ---- calling the API --------------------------------------------------------------------------
    def call(
        self, method: str, url: str, access_token: str, headers: dict[str, str] | None = None, content: bytes = b""
    ) -> httpx.Response:
        """The API request as given (a 429 is the caller's to handle: nothing is resent)."""
        merged = {**(headers or {}), "Authorization": f"Bearer {access_token}"}
        return self._send(method, url, headers=merged, content=content or None)
