"""A real OpenID Connect provider for tests: panva/oidc-provider 8.x (OpenID Certified) run by
``tests/oidc/provider.mjs`` under Node, on a kernel-chosen loopback port, over plain http.

Use the fixtures from any conftest (or test module)::

    from tests.oidc_server import oidc_provider, oidc_provider_factory  # noqa: F401

* ``oidc_provider`` (session scope): one provider for the whole session, in oidc-provider's default claim
  placement (see "Where the claims go" below), with one confidential client
  (``.client``: random id/secret, redirect URI ``DEFAULT_REDIRECT_URI``, the in-process app's
  ``http://127.0.0.1:8000/oidc/callback``). Tests that need another redirect URI (an app server on its own
  port) register their own client on it with ``oidc_provider.register_client([...])`` (RFC 7591 dynamic
  registration, gated by an initial access token only this helper knows). Never stop it.
* ``oidc_provider_claims_in_id_token`` (session scope): the same, with the claims in the ID token too.
* ``oidc_provider_each_placement`` (function scope, parametrized): each of those two in turn, for the
  journeys that must work whichever placement the operator's provider uses.
* ``oidc_provider_factory`` (function scope): ``factory(redirect_uris, *, client_id=None, client_secret=None,
  token_endpoint_auth_method="client_secret_basic", accounts=None, extra_clients=(), issuer_host="127.0.0.1",
  claims_in_id_token=False, userinfo=True, userinfo_claims=None, userinfo_fault=None,
  userinfo_signed_response_alg=None)`` starts a private provider (stopped at teardown): for tests that need
  their own client id/secret, account overrides, an issuer on ``localhost`` (a different site from an app on
  127.0.0.1), or a UserInfo endpoint that is absent, signed, or misbehaves (see provider.mjs).

Where the claims go: by default (oidc-provider's ``conformIdTokenClaims: true``, the behaviour OIDC Core
§5.4 describes) the claims requested by scope (email, email_verified, name) come from the UserInfo endpoint
only, whenever an access token is issued (the code flow): the ID token carries ``sub`` but no email.
``claims_in_id_token=True`` puts them in the ID token as well, as some providers do. Real providers
differ, so the sign-in journeys run against both.

The sign-in convention (see the top of provider.mjs): the login string is ``sub``; a login containing
"@" gives ``email`` = login lower-cased and ``email_verified`` = true, except that a login starting with
``unverified+`` gives the email without that prefix and ``email_verified`` = false; ``name`` is the part
before "@". Any non-empty password is accepted. Consent is automatic (openid email profile).

Client authentication at the token endpoint: oidc-provider accepts client_secret_basic and client_secret_post
alike, whichever the client was registered with (``OidcClient.token_request_auth`` uses the registered one).

Building an authorization request: ``provider.authorize_url(client, state=..., nonce=..., code_challenge=...)``
or by hand from ``provider.metadata()["authorization_endpoint"]``; PKCE (S256) is required.
``login_via_http(httpx.Client, url, login)`` / ``alogin_via_http(httpx.AsyncClient, ...)`` drive the
login form with plain form posts and return the redirect to the client (``code``, ``state``, ``iss``)
without fetching it; a browser can drive the same form (``input[name=login]``, ``input[name=password]``,
``button[type=submit]``).

The npm dependency is installed on first use into tests/oidc/node_modules (``npm ci``, ~3 s) and reused.
Without node/npm the tests skip with the install line (``CI=true``: they fail instead).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
import pytest

from tests.npm import INSTALL_HINT, NPM, NPM_TIMEOUT, NpmFolder
from tests.parts import missing, shared, signal_and_wait

NODE = shutil.which("node")

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
SCRIPT = OIDC_DIR / "provider.mjs"
NODE_MODULES = OIDC_DIR / "node_modules"

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SCOPE = "openid email profile"
# The in-process harness's issuer is http://127.0.0.1:8000 (tests/conftest.py: ISSUER_HOST, ISSUER_PORT).
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/oidc/callback"
UNVERIFIED_PREFIX = "unverified+"

AuthMethod = Literal["client_secret_basic", "client_secret_post"]


def require_node(env: Mapping[str, str] | None = None, *, need_npm: bool | None = None) -> None:
    """Skip the test when node (or npm, while tests/oidc/node_modules is not installed yet) is missing;
    fail instead when ``CI=true``. ``env`` defaults to ``os.environ``."""
    env = os.environ if env is None else env
    if need_npm is None:
        need_npm = not npm_deps_installed()
    needed = [("node", NODE), ("npm", NPM)] if need_npm else [("node", NODE)]
    for name, path in needed:
        if path is None or not os.access(path, os.X_OK):
            missing(f"{name} not found; install it with: {INSTALL_HINT}", env)


# --- the npm dependency ----------------------------------------------------------------------------


OIDC_NPM = NpmFolder(OIDC_DIR, "oidc-provider")


def npm_deps_installed() -> bool:
    """tests/oidc/node_modules holds oidc-provider, at the version package-lock.json pins (if any)."""
    return OIDC_NPM.installed()


def ensure_npm_deps(timeout: float = NPM_TIMEOUT) -> None:
    """Install tests/oidc's npm dependencies once (tests/npm.py)."""
    OIDC_NPM.ensure(timeout)


# --- PKCE and clients ------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass(frozen=True)
class OidcClient:
    """A confidential client of the provider. Keep ids/secrets URL-safe: client_secret_basic credentials
    are form-urlencoded before base64 (RFC 6749 §2.3.1), which httpx's ``auth=(id, secret)`` does not do."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    userinfo_signed_response_alg: str | None = None  # UserInfo as a signed JWT (OIDC Core §5.3.2)

    @classmethod
    def new(
        cls,
        redirect_uris: Sequence[str],
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_endpoint_auth_method: AuthMethod = "client_secret_basic",  # noqa: S107 (not a secret)
        userinfo_signed_response_alg: str | None = None,
    ) -> OidcClient:
        return cls(
            client_id=client_id or f"client-{secrets.token_hex(6)}",
            client_secret=client_secret or secrets.token_urlsafe(32),
            redirect_uris=tuple(redirect_uris),
            token_endpoint_auth_method=token_endpoint_auth_method,
            userinfo_signed_response_alg=userinfo_signed_response_alg,
        )

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }
        if self.userinfo_signed_response_alg is not None:
            metadata["userinfo_signed_response_alg"] = self.userinfo_signed_response_alg
        return metadata

    def token_request_auth(self, form: dict[str, str]) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        """(form, auth) for a token request with this client's authentication method."""
        if self.token_endpoint_auth_method == "client_secret_post":
            return {**form, "client_id": self.client_id, "client_secret": self.client_secret}, None
        return form, httpx.BasicAuth(self.client_id, self.client_secret)


# --- the provider process --------------------------------------------------------------------------


class OidcProviderError(RuntimeError):
    pass


_LIVE: set[OidcProvider] = set()


@atexit.register
def _kill_leftovers() -> None:
    for provider in list(_LIVE):
        with contextlib.suppress(Exception):
            provider.kill()


class OidcProvider:
    """One ``node tests/oidc/provider.mjs`` process on 127.0.0.1 (port chosen by the kernel: no race).

    ``clients``: registered at start. ``accounts``: per-login claim overrides ({login: {claim: value|None}}).
    ``claims_in_id_token``: the scope-requested claims in the ID token too (default: from UserInfo only).
    ``userinfo=False``: no UserInfo endpoint. ``userinfo_claims``: per-login overrides of the UserInfo response
    only (``sub`` included). ``userinfo_fault``: the UserInfo endpoint misbehaves (see provider.mjs).
    ``registration``: enable RFC 7591 registration (``register_client``) with a private initial access token.
    ``issuer_host="localhost"``: issuer ``http://localhost:PORT`` (still bound to 127.0.0.1), a different site
    from an app on 127.0.0.1 (ports do not make sites), so SameSite behaves as between real domains.
    The process's stdout+stderr go to ``log_path`` (``log_tail()`` for failure messages).
    """

    def __init__(
        self,
        clients: Sequence[OidcClient] = (),
        *,
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        registration: bool = True,
        issuer_host: Literal["127.0.0.1", "localhost"] = "127.0.0.1",
        directory: Path | str | None = None,
        claims_in_id_token: bool = False,
        userinfo: bool = True,
        userinfo_claims: Mapping[str, Mapping[str, Any]] | None = None,
        userinfo_fault: Mapping[str, Any] | None = None,
    ) -> None:
        self._owned_dir: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._owned_dir = tempfile.TemporaryDirectory(prefix="oidc-provider-")
            directory = self._owned_dir.name
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clients: list[OidcClient] = list(clients)
        self.accounts = {login: dict(claims) for login, claims in (accounts or {}).items()}
        self.registration_token = secrets.token_urlsafe(24) if registration else None
        self.issuer_host = issuer_host
        self.claims_in_id_token = claims_in_id_token
        self.userinfo_enabled = userinfo
        self.userinfo_claims = {login: dict(claims) for login, claims in (userinfo_claims or {}).items()}
        self.userinfo_fault = dict(userinfo_fault) if userinfo_fault is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self._issuer: str | None = None
        self._eof = False
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._metadata: dict[str, Any] | None = None

    # -- info --

    @property
    def log_path(self) -> Path:
        return self.dir / "provider.log"

    @property
    def issuer(self) -> str:
        if self._issuer is None:
            raise OidcProviderError("provider not started")
        return self._issuer

    @property
    def port(self) -> int:
        port = urlsplit(self.issuer).port
        assert port is not None
        return port

    @property
    def client(self) -> OidcClient:
        """The first client given at start."""
        if not self.clients:
            raise OidcProviderError("no client configured")
        return self.clients[0]

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def client_secret(self) -> str:
        return self.client.client_secret

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "port": 0,
            "issuer_host": self.issuer_host,
            "clients": [client.metadata() for client in self.clients],
            "accounts": self.accounts,
            "claims_in_id_token": self.claims_in_id_token,
            "userinfo": self.userinfo_enabled,
            "userinfo_claims": self.userinfo_claims,
        }
        if self.userinfo_fault is not None:
            config["userinfo_fault"] = self.userinfo_fault
        if self.registration_token:
            config["registration_token"] = self.registration_token
        return config

    # -- lifecycle --

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        if self.proc is not None:
            raise OidcProviderError("provider already started")
        if NODE is None:
            raise OidcProviderError(f"node not found; install it with: {INSTALL_HINT}")
        ensure_npm_deps()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NODE_", "OIDC_PROVIDER_"))}
        env["NODE_ENV"] = "test"
        config = self.dir / "config.json"  # a file: one argument is limited to 128 KiB (MAX_ARG_STRLEN)
        config.write_text(json.dumps(self.config()))
        self.proc = subprocess.Popen(
            [NODE, str(SCRIPT), f"@{config}"],
            cwd=OIDC_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        _LIVE.add(self)
        self._reader = threading.Thread(target=self._read_output, name=f"oidc-provider-{self.proc.pid}", daemon=True)
        self._reader.start()
        try:
            with self._cond:
                self._cond.wait_for(lambda: self._issuer is not None or self._eof, timeout=timeout)
            if self._issuer is None:
                state = "exited" if self._eof else f"not ready after {timeout}s"
                raise OidcProviderError(f"oidc provider {state}:\n{self.log_tail()}")
        except BaseException:
            self.kill()
            raise
        return self

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            with self.log_path.open("ab") as log:
                for line in self.proc.stdout:
                    log.write(line)
                    log.flush()
                    if self._issuer is None and line.startswith(b"READY "):
                        with self._cond:
                            self._issuer = line.split()[1].decode()
                            self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (the script closes its server and exits 0); SIGKILL if it takes too long. Returns the
        exit code (None if never started)."""
        return self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        return self._signal_and_wait(signal.SIGKILL, STOP_TIMEOUT)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        signal_and_wait(proc, sig, timeout, STOP_TIMEOUT)
        if self._reader is not None:
            self._reader.join(timeout=STOP_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()
        _LIVE.discard(self)
        return proc.returncode

    def close(self) -> None:
        self.stop()
        if self._owned_dir is not None:
            self._owned_dir.cleanup()
            self._owned_dir = None

    def __enter__(self) -> Self:
        if self.proc is None:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self._issuer or "(not started)"
        return f"<OidcProvider {where} {'running' if self.is_running else 'stopped'}>"

    # -- protocol helpers --

    def metadata(self) -> dict[str, Any]:
        """The discovery document (fetched once)."""
        if self._metadata is None:
            response = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
            response.raise_for_status()
            self._metadata = response.json()
        return self._metadata

    def jwks(self) -> dict[str, Any]:
        response = httpx.get(self.metadata()["jwks_uri"], timeout=10)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def register_client(
        self,
        redirect_uris: Sequence[str],
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_endpoint_auth_method: AuthMethod = "client_secret_basic",  # noqa: S107 (not a secret)
    ) -> OidcClient:
        """Register one more confidential client on the running provider (RFC 7591)."""
        if not self.registration_token:
            raise OidcProviderError("registration is disabled on this provider")
        client = OidcClient.new(
            redirect_uris,
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method=token_endpoint_auth_method,
        )
        body = {
            **client.metadata(),
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
            "id_token_signed_response_alg": "RS256",
        }
        response = httpx.post(
            f"{self.issuer}/reg",
            json=body,
            headers={"Authorization": f"Bearer {self.registration_token}"},
            timeout=10,
        )
        if response.status_code != 201:
            raise OidcProviderError(f"registration refused ({response.status_code}): {response.text}")
        registered = response.json()
        if (registered["client_id"], registered["client_secret"]) != (client.client_id, client.client_secret):
            raise OidcProviderError(f"registration changed the credentials: {registered}")
        self.clients.append(client)
        return client

    def authorize_url(
        self,
        client: OidcClient | None = None,
        *,
        code_challenge: str,
        state: str,
        nonce: str | None = None,
        redirect_uri: str | None = None,
        scope: str = SCOPE,
        **extra: str,
    ) -> str:
        """An authorization-code request URL (S256 PKCE). ``extra``: e.g. ``prompt="login"``, ``login_hint``."""
        client = client or self.client
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri or client.redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if nonce is not None:
            params["nonce"] = nonce
        params.update(extra)
        return f"{self.metadata()['authorization_endpoint']}?{urlencode(params)}"

    def exchange_code(
        self, code: str, code_verifier: str, client: OidcClient | None = None, *, redirect_uri: str | None = None
    ) -> httpx.Response:
        """POST the token request (client authenticated by its method); returns the raw response."""
        client = client or self.client
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri or client.redirect_uri,
            "code_verifier": code_verifier,
        }
        data, auth = client.token_request_auth(form)
        return httpx.post(self.metadata()["token_endpoint"], data=data, auth=auth, timeout=10)

    def userinfo(self, access_token: str) -> httpx.Response:
        """GET the UserInfo endpoint with the access token as a Bearer token (RFC 6750 §2.1)."""
        headers = {"Authorization": f"Bearer {access_token}"}
        return httpx.get(self.metadata()["userinfo_endpoint"], headers=headers, timeout=10)


# --- driving the login form over plain HTTP --------------------------------------------------------


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"action": values.get("action", ""), "method": values.get("method", "get"), "inputs": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(values)


@dataclass
class _Step:
    kind: Literal["done", "get", "post"]
    url: str
    data: dict[str, str] = field(default_factory=dict)


def _same_endpoint(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc, pa.path) == (pb.scheme, pb.netloc, pb.path)


def _next_step(response: httpx.Response, redirect_uri: str, origin: str, login: str, password: str) -> _Step:
    if response.is_redirect:
        target = urljoin(str(response.url), response.headers["location"])
        parts = urlsplit(target)
        if _same_endpoint(target, redirect_uri) or f"{parts.scheme}://{parts.netloc}" != origin:
            return _Step("done", target)
        return _Step("get", target)
    if response.status_code != 200 or "html" not in response.headers.get("content-type", ""):
        raise OidcProviderError(
            f"unexpected response {response.status_code} from {response.url}: {response.text[:2000]}"
        )
    parser = _FormParser()
    parser.feed(response.text)
    forms = [form for form in parser.forms if form["method"].lower() == "post"]
    if not forms:
        raise OidcProviderError(f"no form on {response.url}: {response.text[:2000]}")
    form = forms[0]
    data: dict[str, str] = {}
    for field_ in form["inputs"]:
        name = field_.get("name")
        if not name:
            continue
        if name == "login":
            data[name] = login
        elif name == "password":
            data[name] = password
        else:
            data[name] = field_.get("value", "")
    return _Step("post", urljoin(str(response.url), form["action"]), data)


def _redirect_uri_of(authorize_url: str) -> tuple[str, str]:
    query = httpx.URL(authorize_url).params
    parts = urlsplit(authorize_url)
    return query.get("redirect_uri", ""), f"{parts.scheme}://{parts.netloc}"


def login_via_http(
    client: httpx.Client,
    authorize_url: str,
    login: str,
    password: str = "any-password",  # noqa: S107 (the dev login form accepts any password)
    *,
    max_steps: int = 12,
) -> str:
    """Drive the provider's login form with plain requests: GET ``authorize_url``, follow the provider's
    redirects, POST the login form (and any further form, e.g. consent), and return the final redirect to
    the client's redirect_uri (carrying ``code``/``state``/``iss`` or ``error``) WITHOUT fetching it.

    ``client`` must keep cookies (an ``httpx.Client`` does) and must not follow redirects itself."""
    redirect_uri, origin = _redirect_uri_of(authorize_url)
    step = _Step("get", authorize_url)
    for _ in range(max_steps):
        if step.kind == "get":
            response = client.get(step.url, follow_redirects=False)
        else:
            response = client.post(step.url, data=step.data, follow_redirects=False)
        step = _next_step(response, redirect_uri, origin, login, password)
        if step.kind == "done":
            return step.url
    raise OidcProviderError(f"no redirect to {redirect_uri} after {max_steps} steps")


async def alogin_via_http(
    client: httpx.AsyncClient,
    authorize_url: str,
    login: str,
    password: str = "any-password",  # noqa: S107 (the dev login form accepts any password)
    *,
    max_steps: int = 12,
) -> str:
    """``login_via_http`` for an ``httpx.AsyncClient`` (for anyio tests)."""
    redirect_uri, origin = _redirect_uri_of(authorize_url)
    step = _Step("get", authorize_url)
    for _ in range(max_steps):
        if step.kind == "get":
            response = await client.get(step.url, follow_redirects=False)
        else:
            response = await client.post(step.url, data=step.data, follow_redirects=False)
        step = _next_step(response, redirect_uri, origin, login, password)
        if step.kind == "done":
            return step.url
    raise OidcProviderError(f"no redirect to {redirect_uri} after {max_steps} steps")


# --- fixtures --------------------------------------------------------------------------------------


def _session_provider(tmp_path_factory: pytest.TempPathFactory, *, claims_in_id_token: bool) -> Iterator[OidcProvider]:
    require_node()
    name = "oidc-provider-claims-in-id-token" if claims_in_id_token else "oidc-provider"

    def make() -> OidcProvider:
        default = OidcClient.new([DEFAULT_REDIRECT_URI], client_id="authmd-test")
        directory = tmp_path_factory.mktemp(name)
        return OidcProvider([default], directory=directory, claims_in_id_token=claims_in_id_token).start()

    with shared(name, make, OidcProvider.close) as provider:
        yield provider


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One provider for the whole session, claims from UserInfo (oidc-provider's default); ``.client``
    redirects to ``DEFAULT_REDIRECT_URI``; register your own clients with ``.register_client``; never stop it."""
    yield from _session_provider(tmp_path_factory, claims_in_id_token=False)


@pytest.fixture(scope="session")
def oidc_provider_claims_in_id_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """``oidc_provider`` with the claims in the ID token as well (``claims_in_id_token=True``)."""
    yield from _session_provider(tmp_path_factory, claims_in_id_token=True)


CLAIM_PLACEMENTS = {"claims-from-userinfo": "oidc_provider", "claims-in-id-token": "oidc_provider_claims_in_id_token"}


@pytest.fixture(params=list(CLAIM_PLACEMENTS))
def oidc_provider_each_placement(request: pytest.FixtureRequest) -> OidcProvider:
    """The session provider of each claim placement in turn (the test runs once per placement)."""
    provider: OidcProvider = request.getfixturevalue(CLAIM_PLACEMENTS[request.param])
    return provider


OidcProviderFactory = Callable[..., OidcProvider]


@pytest.fixture
def oidc_provider_factory(tmp_path: Path) -> Iterator[OidcProviderFactory]:
    """``factory(redirect_uris, *, client_id=None, client_secret=None, token_endpoint_auth_method=
    "client_secret_basic", accounts=None, extra_clients=(), issuer_host="127.0.0.1", claims_in_id_token=False,
    userinfo=True, userinfo_claims=None, userinfo_fault=None, userinfo_signed_response_alg=None)`` → a started
    private provider whose ``.client`` is that client; every provider made is stopped at teardown."""
    require_node()
    made: list[OidcProvider] = []

    def factory(
        redirect_uris: Sequence[str],
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_endpoint_auth_method: AuthMethod = "client_secret_basic",  # noqa: S107 (not a secret)
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        extra_clients: Sequence[OidcClient] = (),
        issuer_host: Literal["127.0.0.1", "localhost"] = "127.0.0.1",
        claims_in_id_token: bool = False,
        userinfo: bool = True,
        userinfo_claims: Mapping[str, Mapping[str, Any]] | None = None,
        userinfo_fault: Mapping[str, Any] | None = None,
        userinfo_signed_response_alg: str | None = None,
    ) -> OidcProvider:
        client = OidcClient.new(
            redirect_uris,
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method=token_endpoint_auth_method,
            userinfo_signed_response_alg=userinfo_signed_response_alg,
        )
        provider = OidcProvider(
            [client, *extra_clients],
            accounts=accounts,
            issuer_host=issuer_host,
            directory=tmp_path / f"oidc-provider-{len(made)}",
            claims_in_id_token=claims_in_id_token,
            userinfo=userinfo,
            userinfo_claims=userinfo_claims,
            userinfo_fault=userinfo_fault,
        )
        made.append(provider)
        return provider.start()

    try:
        yield factory
    finally:
        for provider in made:
            provider.stop()


def expected_claims(login: str) -> dict[str, Any]:
    """The claims the provider derives from a login (the convention in provider.mjs), for assertions."""
    unverified = login.startswith(UNVERIFIED_PREFIX)
    bare = login.removeprefix(UNVERIFIED_PREFIX)
    if "@" not in bare:
        return {"sub": login, "name": login}
    return {"sub": login, "email": bare.lower(), "email_verified": not unverified, "name": bare.split("@", 1)[0]}
