"""A test agent identity provider that is a real HTTP server on a loopback port.

It holds its own signing keys, serves them as a JWKS (with a Cache-Control header the test sets), serves
any JSON or raw document a test registers (Client ID Metadata Documents, metadata, garbage), and mints
ID-JAGs (draft-ietf-oauth-identity-assertion-authz-grant) and Security Event Tokens (RFC 8417), well
formed or deliberately hostile. Nothing is patched: the code under test fetches over real HTTP.

Use the fixtures from any conftest or test module::

    from tests.provider import es256_provider_fixture, provider_fixture  # noqa: F401

* ``provider``        (function scope): a started RS256 provider, stopped at teardown.
* ``es256_provider``  (function scope): the same with an ES256 key.

Or as a context manager: ``with TestProvider(alg="ES256", path="/tenant") as idp: ...``.

Every hostile helper builds its JWS by hand (PyJWT refuses ``none``-with-a-key and HMAC keyed with a
PEM public key), so tests see exactly the bytes an attacker would send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.keys import public_jwk, thumbprint

HOST = "127.0.0.1"
ID_JAG_TYP = "oauth-id-jag+jwt"
SET_TYP = "secevent+jwt"
SET_CONTENT_TYPE = "application/secevent+jwt"
# Both spellings of the provider revocation event seen in the wild (spec/protocol.md "Revocation and events"):
# the first is the one advertised in events_supported, the second is what the reference provider sends.
REVOKED_URIS = (
    "https://schemas.workos.com/events/agent/auth/identity/assertion/revoked",
    "https://schemas.workos.com/events/agent/identity/assertion/revoked",
)
JWKS_SUFFIX = "/.well-known/jwks.json"
DEFAULT_CACHE_CONTROL = "public, max-age=300"
DEFAULT_LIFETIME = 300
HANDLER_SOCKET_TIMEOUT = 5.0  # an idle client connection cannot hold a handler (and so stop()) longer
STOP_TIMEOUT = 10.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def new_private_key(alg: str = "RS256") -> Any:
    """A fresh private key for ``alg`` (RS256: RSA-2048; ES256: P-256); use it as a foreign ``key=``."""
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported alg {alg!r}: RS256 or ES256")


def alg_for_key(private_key: Any) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return "ES256"
    raise TypeError(f"unsupported key type {type(private_key).__name__}")


def sign_jws(header: Mapping[str, Any], claims: Mapping[str, Any], key: Any) -> str:
    """Compact JWS with exactly ``header`` (its ``alg`` picks the algorithm; ``none`` → empty signature).

    ``key`` is a cryptography private key (or PEM) for RS*/ES*/PS*, bytes for HS*, ignored for ``none``.
    """
    signing_input = f"{b64url(_json_bytes(dict(header)))}.{b64url(_json_bytes(dict(claims)))}"
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        return signing_input + "."
    algorithm = jwt.get_algorithm_by_name(alg)
    signature = algorithm.sign(signing_input.encode("ascii"), algorithm.prepare_key(key))
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True, slots=True)
class ProviderKey:
    kid: str
    alg: str
    private_key: Any

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()

    def jwk(self) -> dict[str, str]:
        """The public JWK only (``public_jwk`` emits the RFC 7638 members, never ``d``/``p``/``q``...)."""
        return {**public_jwk(self.private_key), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return bytes(
            self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    @classmethod
    def generate(cls, alg: str) -> ProviderKey:
        private = new_private_key(alg)
        return cls(thumbprint(public_jwk(private)), alg, private)


@dataclass(frozen=True, slots=True)
class Route:
    body: bytes
    status: int
    content_type: str
    delay: float
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str  # without the query string
    target: str  # as sent, query included
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    # Handler threads are joined by server_close() (block_on_close), so nothing outlives stop().
    daemon_threads = False
    block_on_close = True

    def __init__(self, provider: TestProvider) -> None:
        self.provider = provider
        super().__init__((HOST, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() does a reverse DNS lookup (getfqdn); loopback needs none.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = HANDLER_SOCKET_TIMEOUT
    server_version = "authmd-test-provider"
    sys_version = ""

    def do_GET(self) -> None:
        self.server.provider._handle(self)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return

    def respond(self, status: int, body: bytes, headers: Iterable[tuple[str, str]]) -> None:
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (e.g. its timeout fired): nothing to deliver to
            self.close_connection = True


class TestProvider:
    """An agent identity provider on ``http://127.0.0.1:PORT{path}``; see the module docstring."""

    __test__ = False  # not a test class, though its name starts with "Test"

    def __init__(self, *, alg: str = "RS256", path: str = "") -> None:
        path = path.rstrip("/")
        if path and not path.startswith("/"):
            path = "/" + path
        self.path = path
        self.cache_control: str | None = DEFAULT_CACHE_CONTROL
        self._lock = threading.Lock()
        self._keys: list[ProviderKey] = [ProviderKey.generate(alg)]  # last one is current
        self._routes: dict[str, Route] = {}
        self._hits: Counter[str] = Counter()
        self._requests: list[RequestRecord] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(self)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-provider", daemon=True
        )
        try:
            thread.start()
        except BaseException:
            server.server_close()
            raise
        self._server, self._thread, self._port = server, thread, server.server_address[1]
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed handlers, close the socket and join every thread. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        self._stopping.set()  # delayed responses return at once instead of sleeping out their delay
        try:
            server.shutdown()
        finally:
            server.server_close()  # joins handler threads
            if thread is not None:
                thread.join(STOP_TIMEOUT)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("TestProvider not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.base_url + self.path

    @property
    def jwks_path(self) -> str:
        return self.path + JWKS_SUFFIX

    @property
    def jwks_uri(self) -> str:
        return self.base_url + self.jwks_path

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server (paths are from the server root, not the issuer path)."""
        return self.base_url + path

    # -- keys --------------------------------------------------------------------------------------

    @property
    def current_key(self) -> ProviderKey:
        with self._lock:
            return self._keys[-1]

    @property
    def kid(self) -> str:
        return self.current_key.kid

    @property
    def alg(self) -> str:
        return self.current_key.alg

    @property
    def keys(self) -> list[ProviderKey]:
        """Every published key, oldest first; the last one signs."""
        with self._lock:
            return list(self._keys)

    def rotate_key(self, alg: str | None = None, *, keep_old: bool = True) -> str:
        """Make a new key current and return its kid; old keys stay in the JWKS unless ``keep_old=False``."""
        new = ProviderKey.generate(alg or self.alg)
        with self._lock:
            self._keys = [*self._keys, new] if keep_old else [new]
        return new.kid

    def drop_key(self, kid: str) -> None:
        """Unpublish one non-current key (a provider finishing a rotation)."""
        with self._lock:
            if self._keys[-1].kid == kid:
                raise ValueError("cannot drop the current key; rotate first")
            self._keys = [k for k in self._keys if k.kid != kid]

    def jwks(self) -> dict[str, Any]:
        """What ``GET {jwks_uri}`` serves: public members only."""
        return {"keys": [k.jwk() for k in self.keys]}

    # -- documents ---------------------------------------------------------------------------------

    def serve_json(
        self,
        path: str,
        document: Any,
        *,
        status: int = 200,
        content_type: str = "application/json",
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Serve ``document`` as JSON at ``path`` (from the server root); returns its URL.

        ``delay`` holds the response that many seconds (woken early by ``stop()``) to exercise client
        timeouts. A route at ``jwks_path`` overrides the JWKS (e.g. a 503 outage) until ``unserve``.
        """
        return self.serve_bytes(path, _json_bytes(document), content_type, status=status, delay=delay, headers=headers)

    def serve_bytes(
        self,
        path: str,
        body: bytes,
        content_type: str = "application/octet-stream",
        *,
        status: int = 200,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        route = Route(bytes(body), status, content_type, delay, tuple((headers or {}).items()))
        with self._lock:
            self._routes[path] = route
        return self.url(path)

    def unserve(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    # -- request accounting --------------------------------------------------------------------------

    def hits(self, path: str) -> int:
        """GET requests received for ``path`` (query string ignored)."""
        with self._lock:
            return self._hits[path]

    @property
    def jwks_requests(self) -> int:
        return self.hits(self.jwks_path)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def reset_counters(self) -> None:
        with self._lock:
            self._hits.clear()
            self._requests.clear()

    # -- the HTTP side (runs on handler threads) -----------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        path = urlsplit(handler.path).path
        record = RequestRecord(handler.command, path, handler.path, {k.lower(): v for k, v in handler.headers.items()})
        with self._lock:
            self._hits[path] += 1
            self._requests.append(record)
            route = self._routes.get(path)
        if route is not None:
            if route.delay > 0 and self._stopping.wait(route.delay):
                handler.close_connection = True
                return  # stopping: drop the connection without answering
            handler.respond(route.status, route.body, [("Content-Type", route.content_type), *route.headers])
        elif path == self.jwks_path:
            headers = [("Content-Type", "application/json")]
            cache_control = self.cache_control
            if cache_control is not None:
                headers.append(("Cache-Control", cache_control))
            handler.respond(200, _json_bytes(self.jwks()), headers)
        else:
            handler.respond(404, _json_bytes({"error": "not_found"}), [("Content-Type", "application/json")])

    # -- tokens ------------------------------------------------------------------------------------

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        typ: str | None,
        alg: str | None = None,
        kid: str | None = None,
        key: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign ``claims`` with the current key (or ``key``). Header: ``alg``, ``kid``, ``typ`` (omitted
        when None), then ``headers`` merged over them; a header value of None removes that parameter
        (``headers={"kid": None}`` sends no kid)."""
        current = self.current_key
        signing_key = current.private_key if key is None else key
        if alg is None:
            alg = current.alg if key is None else alg_for_key(key)
        header: dict[str, Any] = {"alg": alg, "kid": kid or current.kid}
        if typ is not None:
            header["typ"] = typ
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not None}
        return sign_jws(header, claims, signing_key)

    def id_jag_claims(
        self,
        sub: str,
        *,
        aud: str | list[str],
        email: str | None = None,
        email_verified: bool | None = True,
        phone_number: str | None = None,
        phone_number_verified: bool | None = True,
        client_id: str = "agent-cli",
        scope: str | None = None,
        auth_time: int | None = None,
        amr: list[str] | None = None,
        iat: int | None = None,
        exp: int | None = None,
        jti: str | None = None,
        issuer: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        drop_claims: Iterable[str] = (),
    ) -> dict[str, Any]:
        """The claims ``mint_id_jag`` signs (see there); for hand-built hostile tokens."""
        now = int(time.time())
        iat = now if iat is None else iat
        claims: dict[str, Any] = {
            "iss": self.issuer if issuer is None else issuer,
            "sub": sub,
            "aud": aud,
            "client_id": client_id,
            "jti": secrets.token_urlsafe(16) if jti is None else jti,
            "iat": iat,
            "exp": iat + DEFAULT_LIFETIME if exp is None else exp,
            "auth_time": now if auth_time is None else auth_time,
        }
        if scope is not None:
            claims["scope"] = scope
        if amr is not None:
            claims["amr"] = list(amr)
        if email is not None:
            claims["email"] = email
            if email_verified is not None:
                claims["email_verified"] = email_verified
        if phone_number is not None:
            claims["phone_number"] = phone_number
            if phone_number_verified is not None:
                claims["phone_number_verified"] = phone_number_verified
        claims.update(extra_claims or {})
        for name in drop_claims:
            claims.pop(name, None)
        return claims

    def mint_id_jag(
        self,
        sub: str,
        *,
        aud: str | list[str],
        email: str | None = None,
        email_verified: bool | None = True,
        phone_number: str | None = None,
        phone_number_verified: bool | None = True,
        client_id: str = "agent-cli",
        scope: str | None = None,
        auth_time: int | None = None,
        amr: list[str] | None = None,
        iat: int | None = None,
        exp: int | None = None,
        jti: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        drop_claims: Iterable[str] = (),
        typ: str | None = ID_JAG_TYP,
        alg: str | None = None,
        kid: str | None = None,
        key: Any = None,
        headers: Mapping[str, Any] | None = None,
        issuer: str | None = None,
    ) -> str:
        """An ID-JAG for ``sub`` addressed to ``aud`` (our issuer), signed with the current key.

        Defaults: ``iat``/``auth_time`` now, ``exp`` = iat + 300, random ``jti``, ``email_verified``
        (and ``phone_number_verified``) True but only sent alongside ``email`` (``phone_number``); None
        leaves it out. ``extra_claims`` are merged last, then ``drop_claims`` removed. ``typ=None``
        omits the header; ``key`` signs with another private key (kid still the current one unless
        ``kid`` is given); ``headers`` adds JOSE parameters (``jku``, ``x5u``, ``jwk``, ...).
        """
        claims = self.id_jag_claims(
            sub,
            aud=aud,
            email=email,
            email_verified=email_verified,
            phone_number=phone_number,
            phone_number_verified=phone_number_verified,
            client_id=client_id,
            scope=scope,
            auth_time=auth_time,
            amr=amr,
            iat=iat,
            exp=exp,
            jti=jti,
            issuer=issuer,
            extra_claims=extra_claims,
            drop_claims=drop_claims,
        )
        return self.sign(claims, typ=typ, alg=alg, kid=kid, key=key, headers=headers)

    def mint_set(
        self,
        events: Mapping[str, Any] | None,
        *,
        aud: str | list[str],
        sub: str | None = None,
        revocation_of: str | None = None,
        uri: str = REVOKED_URIS[0],
        iat: int | None = None,
        jti: str | None = None,
        typ: str | None = SET_TYP,
        alg: str | None = None,
        kid: str | None = None,
        key: Any = None,
        headers: Mapping[str, Any] | None = None,
        issuer: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        drop_claims: Iterable[str] = (),
    ) -> str:
        """A Security Event Token (RFC 8417): ``iss``, ``aud``, ``iat``, ``jti``, ``events``, and ``sub``
        at top level when given. ``revocation_of=SUB`` adds ``events[uri] = {"subject": {"format":
        "iss_sub", "iss": <iss>, "sub": SUB}}``. Push it with ``Content-Type: SET_CONTENT_TYPE``."""
        iss = self.issuer if issuer is None else issuer
        all_events: dict[str, Any] = dict(events or {})
        if revocation_of is not None:
            all_events[uri] = {"subject": {"format": "iss_sub", "iss": iss, "sub": revocation_of}}
        claims: dict[str, Any] = {
            "iss": iss,
            "aud": aud,
            "iat": int(time.time()) if iat is None else iat,
            "jti": secrets.token_urlsafe(16) if jti is None else jti,
            "events": all_events,
        }
        if sub is not None:
            claims["sub"] = sub
        claims.update(extra_claims or {})
        for name in drop_claims:
            claims.pop(name, None)
        return self.sign(claims, typ=typ, alg=alg, kid=kid, key=key, headers=headers)

    def revocation_set(
        self,
        sub: str,
        *,
        aud: str | list[str],
        uri: str = REVOKED_URIS[0],
        iat: int | None = None,
        jti: str | None = None,
        **overrides: Any,
    ) -> str:
        """The WorkOS-style revocation SET for ``(iss, sub)``: ``sub`` at top level (what the reference
        receiver reads) and the ``iss_sub`` subject inside the event. ``overrides`` go to ``mint_set``."""
        return self.mint_set({}, aud=aud, sub=sub, revocation_of=sub, uri=uri, iat=iat, jti=jti, **overrides)

    # -- hostile tokens ----------------------------------------------------------------------------

    def unsigned(self, claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
        """``alg: none`` with an empty signature; ``header`` is merged over ``{"alg": "none", "typ":
        ID-JAG typ, "kid": current kid}`` (so ``{"alg": "None"}`` tries a case variant)."""
        full = {"alg": "none", "typ": ID_JAG_TYP, "kid": self.kid, **(header or {})}
        signing_input = f"{b64url(_json_bytes(full))}.{b64url(_json_bytes(dict(claims)))}"
        return signing_input + "."

    def hs256_with_public_key(
        self,
        claims: Mapping[str, Any],
        *,
        typ: str | None = ID_JAG_TYP,
        kid: str | None = None,
        secret: bytes | None = None,
    ) -> str:
        """The algorithm-confusion attack: HS256 keyed with the PEM (SubjectPublicKeyInfo) of the current
        public key, kid pointing at that key. Built with hmac by hand: PyJWT refuses PEM HMAC keys."""
        header: dict[str, Any] = {"alg": "HS256", "kid": kid or self.kid}
        if typ is not None:
            header["typ"] = typ
        signing_input = f"{b64url(_json_bytes(header))}.{b64url(_json_bytes(dict(claims)))}"
        mac_key = self.current_key.public_pem() if secret is None else secret
        mac = hmac.new(mac_key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    def oversized(self, n_bytes: int, *, aud: str | list[str], sub: str = "oversized-user", **kwargs: Any) -> str:
        """A validly signed ID-JAG at least ``n_bytes`` long, padded with a big ``pad`` claim."""
        base = self.id_jag_claims(sub, aud=aud, **{k: v for k, v in kwargs.items() if k in _CLAIM_KWARGS})
        sign_kwargs = {k: v for k, v in kwargs.items() if k not in _CLAIM_KWARGS}
        sign_kwargs.setdefault("typ", ID_JAG_TYP)
        pad = 0
        while True:
            token = self.sign({**base, "pad": "x" * pad}, **sign_kwargs)
            if len(token) >= n_bytes:
                return token
            pad += max(1, math.ceil((n_bytes - len(token)) * 3 / 4))


_CLAIM_KWARGS = frozenset(
    {
        "email",
        "email_verified",
        "phone_number",
        "phone_number_verified",
        "client_id",
        "scope",
        "auth_time",
        "amr",
        "iat",
        "exp",
        "jti",
        "issuer",
        "extra_claims",
        "drop_claims",
    }
)


@pytest.fixture(name="provider")
def provider_fixture() -> Iterator[TestProvider]:
    with TestProvider(alg="RS256") as idp:
        yield idp


@pytest.fixture(name="es256_provider")
def es256_provider_fixture() -> Iterator[TestProvider]:
    with TestProvider(alg="ES256") as idp:
        yield idp
