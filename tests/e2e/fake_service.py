"""A small auth.md service on a real loopback HTTP server, speaking spec/protocol.md in revision 1 or
revision 2, for the tests of the commands that talk to *any* service (`authmd doctor --probe`,
`authmd agent`) where the real server cannot show the other dialect or a rare answer.

It keeps real state (registrations, claims with their live attempts, tokens) and answers every
request from it; a test may put scripted replies in front of an endpoint (``script``), make the
human act (``confirm``, ``deny``), and read every request it received (``requests``). Nothing is
patched: the code under test talks HTTP to it.

Revision 1: error bodies `{error, error_description, hint}`, `rate_limited` with `Retry-After` only, a
new claim attempt replaces the previous one, the `user_code` compared exactly, no `login_hint` alias,
a revoked registration's claim answers `claim_expired`.
Revision 2: `message` too, `rate_limit_exceeded` with `retry_after`, up to ``max_live_attempts`` live
attempts (then 429 `too_many_attempts`), the code compared on its digits, `{"type":"login_hint"}`,
`claim_revoked`, `claim_denied` and the status `denied`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from tests.provider import ProviderKey

HOST = "127.0.0.1"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AS_PATH = "/.well-known/oauth-authorization-server"
PRM_PATH = "/.well-known/oauth-protected-resource/api"
JWKS_PATH = "/.well-known/jwks.json"
IDENTITY = "/agent/identity"
CLAIM = "/agent/identity/claim"
TOKEN = "/oauth2/token"
REVOKE = "/oauth2/revoke"
API = "/api/notes"
DOC_HEADERS = {"Cache-Control": "public, max-age=300", "ETag": '"v1"'}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
LIFETIME = 3600
ATTEMPT_LIFETIME = 600
REVISION_1_NAMES = {
    "anonymous_registration_disabled": "anonymous_not_enabled",
    "service_auth_registration_disabled": "service_auth_not_enabled",
    "rate_limit_exceeded": "rate_limited",
}
STATUS = {
    "invalid_request": 400,
    "invalid_grant": 400,
    "invalid_target": 400,
    "invalid_claim": 400,
    "invalid_claim_token": 401,
    "invalid_user_code": 401,
    "invalid_token": 401,
    "claim_denied": 403,
    "auth_method_disabled": 403,
    "already_claimed": 409,
    "claim_not_confirmed": 409,
    "claim_expired": 410,
    "claim_revoked": 410,
    "rate_limit_exceeded": 429,
    "too_many_attempts": 429,
    "not_found": 404,
}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None  # a JSON value, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return b"" if self.body is None else json.dumps(self.body).encode()


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Attempt:
    uri: str
    expires_at: float
    login_hint: str | None


@dataclass
class Registration:
    id: str
    assertion: str
    claim_token: str
    expires_at: float
    attempts: list[Attempt] = field(default_factory=list)
    confirmed_code: str | None = None
    status: str = "pending"  # pending, claimed, revoked, denied
    access_tokens: set[str] = field(default_factory=set)
    refresh_token: str | None = None


class FakeAuthService:
    """See the module docstring. ``with FakeAuthService(revision=2) as svc: svc.issuer ...``"""

    def __init__(self, *, revision: int = 2, max_live_attempts: int = 3, advertised: int | None = None) -> None:
        assert revision in (1, 2)
        self.revision = revision
        self.max_live_attempts = max_live_attempts  # enforced (revision 2)
        self.advertised = max_live_attempts if advertised is None else advertised  # in the metadata
        self.key = ProviderKey.generate("ES256")
        self._lock = threading.Lock()
        self._scripts: dict[tuple[str, str], list[Reply]] = {}
        self._requests: list[Received] = []
        self.registrations: dict[str, Registration] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        service = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5.0
            server_version = "fake-auth-service"
            sys_version = ""

            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

            def log_message(self, format: str, *args: Any) -> None:
                return

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = service.handle(Received(self.command, urlsplit(self.path).path, headers, body))
                payload = reply.encoded()
                try:
                    self.send_response(reply.status)
                    if not any(k.lower() == "content-type" for k in reply.headers):
                        self.send_header("Content-Type", "application/json")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    @property
    def issuer(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.issuer + path

    # -- what a test does --------------------------------------------------------------------------

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``method path`` with ``replies``, in order, before the state does."""
        with self._lock:
            self._scripts.setdefault((method, path), []).extend(replies)

    def requests(self, method: str | None = None, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._requests if (method in (None, r.method)) and (path in (None, r.path))]

    def only(self) -> Registration:
        with self._lock:
            assert len(self.registrations) == 1, self.registrations
            return next(iter(self.registrations.values()))

    def confirm(self, code: str = "870581") -> None:
        """The human signed in, authorized, and the page shows ``code``."""
        with self._lock:
            reg = next(iter(self.registrations.values()))
            reg.confirmed_code = code

    def deny(self) -> None:
        """The human pressed "This wasn't me": the registration is revoked."""
        with self._lock:
            next(iter(self.registrations.values())).status = "denied"

    def error(self, code: str, description: str, *, retry_after: int | None = None) -> Reply:
        """The error body of this revision (revision 1 names, no `message`; revision 2 both)."""
        status = STATUS[code]
        name = REVISION_1_NAMES.get(code, code) if self.revision == 1 else code
        body: dict[str, Any] = {"error": name, "error_description": description, "hint": "See /auth.md."}
        headers: dict[str, str] = {}
        if self.revision == 2:
            body["message"] = description
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
            if self.revision == 2:
                body["retry_after"] = retry_after
        return Reply(status, body, headers)

    # -- documents ---------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        i = self.issuer
        claim: dict[str, Any] = {"status_endpoint": i + CLAIM + "/status", "complete_endpoint": i + CLAIM + "/complete"}
        if self.revision == 2:
            claim["max_live_attempts"] = self.advertised
        return {
            "issuer": i,
            "jwks_uri": i + JWKS_PATH,
            "token_endpoint": i + TOKEN,
            "revocation_endpoint": i + REVOKE,
            "introspection_endpoint": i + "/oauth2/introspect",
            "response_types_supported": [],
            "grant_types_supported": [JWT_BEARER],
            "agent_auth": {
                "skill": i + "/auth.md",
                "identity_endpoint": i + IDENTITY,
                "claim_endpoint": i + CLAIM,
                "identity_types_supported": ["anonymous", "service_auth"],
                "claim": claim,
            },
        }

    def auth_md(self) -> str:
        meta = json.dumps(self.metadata(), indent=2)
        limited = "rate_limit_exceeded" if self.revision == 2 else "rate_limited"
        return (
            f"# auth.md - fake\n\nIssuer: `{self.issuer}`\n\n"
            f'Register with `POST {self.issuer}{IDENTITY}` and `{{"type": "anonymous"}}`. '
            f"Too many requests: 429 `{limited}`.\n\n"
            f"```json example=authorization-server-metadata\n{meta}\n```\n"
        )

    # -- the HTTP side -----------------------------------------------------------------------------

    def handle(self, req: Received) -> Reply:
        with self._lock:
            self._requests.append(req)
            queued = self._scripts.get((req.method, req.path))
            if queued:
                return queued.pop(0)
            route = ROUTES.get((req.method, req.path))
            if route is None:
                return self.error("not_found", f"no {req.method} {req.path} here")
            try:
                return route(self, req)
            except BadRequest as exc:
                return self.error("invalid_request", str(exc))

    def get_as(self, req: Received) -> Reply:
        return Reply(200, self.metadata(), DOC_HEADERS)

    def get_prm(self, req: Received) -> Reply:
        doc = {
            "resource": self.issuer + "/api",
            "authorization_servers": [self.issuer],
            "jwks_uri": self.url(JWKS_PATH),
        }
        return Reply(200, doc, DOC_HEADERS)

    def get_jwks(self, req: Received) -> Reply:
        return Reply(200, {"keys": [self.key.jwk()]}, DOC_HEADERS)

    def get_auth_md(self, req: Received) -> Reply:
        return Reply(200, self.auth_md().encode(), {"Content-Type": "text/markdown; charset=utf-8", **DOC_HEADERS})

    def get_api(self, req: Received) -> Reply:
        token = req.headers.get("authorization", "").removeprefix("Bearer ")
        if any(token in r.access_tokens and r.status in ("pending", "claimed") for r in self.registrations.values()):
            return Reply(200, {"notes": [], "count": 0})
        reply = self.error("invalid_token", "no valid access token")
        challenge = f'Bearer resource_metadata="{self.url(PRM_PATH)}"'
        return Reply(reply.status, reply.body, {**reply.headers, "WWW-Authenticate": challenge})

    def register(self, req: Received) -> Reply:
        body = _json(req)
        if body.get("type") != "anonymous":
            raise BadRequest(f"unsupported registration type {body.get('type')!r}")
        now = time.time()
        reg = Registration(
            id="reg_" + secrets.token_urlsafe(8),
            assertion="asr_" + secrets.token_urlsafe(16),
            claim_token="clm_" + secrets.token_urlsafe(16),
            expires_at=now + LIFETIME,
        )
        self.registrations[reg.id] = reg
        doc = {
            "id": reg.id,
            "type": "anonymous",
            "identity": {"assertion": reg.assertion, "expires_at": rfc3339(reg.expires_at)},
            "scopes": {"pre_claim": ["notes:read"], "post_claim": ["notes:read", "notes:write"]},
            "claim": {"token": reg.claim_token, "expires_at": rfc3339(reg.expires_at), "url": self.url(CLAIM)},
            "account": {"id": "acct_fake", "type": "temporary", "expires_at": rfc3339(reg.expires_at)},
        }
        return Reply(200, doc, NO_STORE)

    def token(self, req: Received) -> Reply:
        form = req.form()
        if form.get("grant_type") != JWT_BEARER:
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "jwt-bearer only"})
        reg = next((r for r in self.registrations.values() if r.assertion == form.get("assertion")), None)
        if reg is None or reg.status not in ("pending", "claimed"):
            return self.error("invalid_grant", "the assertion is not valid")
        resource, ours = form.get("resource"), self.issuer + "/api"
        below = self.revision == 2 and (resource or "").startswith(ours + "/")
        if resource is not None and resource != ours and not below:
            return self.error("invalid_target", "this service issues tokens only for its own resource")
        access = "at_" + secrets.token_urlsafe(16)
        reg.access_tokens.add(access)
        return Reply(200, {"access_token": access, "token_type": "Bearer", "expires_in": 600}, NO_STORE)

    def revoke(self, req: Received) -> Reply:
        token = req.form().get("token")
        for reg in self.registrations.values():
            if token in (reg.assertion, reg.refresh_token) and reg.status == "pending":
                reg.status = "revoked"
            reg.access_tokens.discard(token or "")
        return Reply(200, b"", {"Content-Type": "text/plain"})

    def _claim_of(self, body: dict[str, Any]) -> Registration | Reply:
        reg = next((r for r in self.registrations.values() if r.claim_token == body.get("claim_token")), None)
        if reg is None:
            return self.error("invalid_claim_token", "the claim token is not valid")
        if reg.status == "claimed":
            return self.error("already_claimed", "this account was already claimed")
        if reg.status in ("revoked", "denied"):
            if self.revision == 1:
                return self.error("claim_expired", "the registration was revoked")
            return self.error("claim_revoked", "the registration was revoked")
        return reg

    def start_claim(self, req: Received) -> Reply:
        body = _json(req)
        kinds = ("service_auth", "login_hint") if self.revision == 2 else ("service_auth",)
        if body.get("type") not in kinds:
            raise BadRequest(f"unsupported claim type {body.get('type')!r}")
        reg = self._claim_of(body)
        if isinstance(reg, Reply):
            return reg
        now = time.time()
        live = [a for a in reg.attempts if a.expires_at > now] if self.revision == 2 else []
        if len(live) >= self.max_live_attempts:
            return self.error("too_many_attempts", f"{len(live)} claim attempts are live already")
        attempt = Attempt(
            f"{self.issuer}/login?attempt=cvt_{secrets.token_urlsafe(12)}",
            now + ATTEMPT_LIFETIME,
            body.get("login_hint"),
        )
        reg.attempts = [*live, attempt]
        reg.confirmed_code = None
        doc = {
            "id": reg.id,
            "type": "service_auth",
            "attempt": {"verification_uri": attempt.uri, "expires_at": rfc3339(attempt.expires_at)},
        }
        return Reply(200, doc, NO_STORE)

    def claim_status(self, req: Received) -> Reply:
        body = _json(req)
        reg = next((r for r in self.registrations.values() if r.claim_token == body.get("claim_token")), None)
        if reg is None:
            return self.error("invalid_claim", "the claim token is not valid")
        status = reg.status
        if status == "denied" and self.revision == 1:
            status = "revoked"
        elif status == "pending" and reg.confirmed_code is not None:
            status = "confirmed"
        return Reply(200, {"id": reg.id, "status": status}, NO_STORE)

    def complete(self, req: Received) -> Reply:
        body = _json(req)
        reg = next((r for r in self.registrations.values() if r.claim_token == body.get("claim_token")), None)
        if reg is not None and reg.status == "denied" and self.revision == 2:
            return self.error("claim_denied", "the human said this was not them")
        found = self._claim_of(body)
        if isinstance(found, Reply):
            return found
        if not found.attempts:
            return self.error("invalid_claim", "no claim attempt was started")
        if found.confirmed_code is None:
            return self.error("claim_not_confirmed", "the human has not authorized this claim yet")
        given = body.get("user_code")
        if not isinstance(given, str):
            return self.error("invalid_user_code", "wrong code")
        if self.revision == 2:
            given = re.sub(r"[\s-]", "", given)
        if given != found.confirmed_code:
            return self.error("invalid_user_code", "wrong code")
        found.status = "claimed"
        found.assertion = "asr_" + secrets.token_urlsafe(16)
        found.refresh_token = "art_" + secrets.token_urlsafe(16)
        later = rfc3339(time.time() + LIFETIME)
        identity = {
            "assertion": found.assertion,
            "expires_at": later,
            "refresh_token": {"value": found.refresh_token, "expires_at": later},
        }
        return Reply(200, {"id": found.id, "status": "claimed", "identity": identity}, NO_STORE)


class BadRequest(Exception):
    pass


def _json(req: Received) -> dict[str, Any]:
    try:
        body = req.json()
    except ValueError as exc:
        raise BadRequest("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body is not a JSON object")
    return body


ROUTES = {
    ("GET", AS_PATH): FakeAuthService.get_as,
    ("GET", PRM_PATH): FakeAuthService.get_prm,
    ("GET", JWKS_PATH): FakeAuthService.get_jwks,
    ("GET", "/auth.md"): FakeAuthService.get_auth_md,
    ("GET", API): FakeAuthService.get_api,
    ("POST", IDENTITY): FakeAuthService.register,
    ("POST", TOKEN): FakeAuthService.token,
    ("POST", REVOKE): FakeAuthService.revoke,
    ("POST", CLAIM): FakeAuthService.start_claim,
    ("POST", CLAIM + "/status"): FakeAuthService.claim_status,
    ("POST", CLAIM + "/complete"): FakeAuthService.complete,
}
