"""Check any service's auth.md discovery chain against spec/protocol.md and the RFCs.

URL is either an API URL or an issuer:

* an API URL answers an unauthenticated GET with 401 and `WWW-Authenticate: Bearer
  resource_metadata="..."` (RFC 9728 sec 5.1); the doctor follows it to the protected-resource
  metadata, takes the issuer from its `authorization_servers`, then checks the issuer;
* anything else is taken as the issuer: `{issuer}/.well-known/oauth-authorization-server` (appended,
  as the official client does; with an issuer path also the RFC 8414 sec 3.1 path-inserted form).

It checks the RFC 9728 and RFC 8414 metadata, the `agent_auth` block, the JWKS, /auth.md, the 401,
TLS and caching headers, and prints one line per check: PASS, WARN or FAIL, with the reason and the
RFC or spec/protocol.md section. A missing /auth.md is a FAIL (the protocol's prose contract for agents).
Revision 2 of the protocol is checked too: `authorization_grant_profiles_supported`, the trust list
`identity_assertion.issuers_supported`, `claim.max_live_attempts`, and every error body the doctor
sees (`error`, `error_description`, `message`; `retry_after` on a 429). A revision 1 error code name
(e.g. `rate_limited`) is a WARN naming its revision 2 replacement.
Only GETs are sent, unless --probe: that registers one anonymous account (POST identity_endpoint
{"type":"anonymous"}), exchanges its assertion at the token endpoint, sends one invalid assertion,
asks for a token for a URI below the protected resource (revision 2: that names the resource), starts
claim attempts for it (two live at once, the flat `login_hint` alias, one past the advertised
`max_live_attempts`: nobody can act on them, the links go nowhere but the service), then revokes it
and checks that its claim answers `claim_revoked`.

Exit status: 0 no failure (warnings allowed), 1 a check failed, 2 usage error, 3 URL unreachable.

examples:
  authmd doctor http://127.0.0.1:8000                 # start from the issuer
  authmd doctor https://api.example.com/api/notes      # start from an API URL (follows the 401)
  authmd doctor https://auth.example.com --json        # one JSON object on stdout
  authmd doctor http://127.0.0.1:8000 --probe          # also register a throwaway anonymous account
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import ipaddress
import json
import re
import ssl
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from app.client.core import transport_reason

Status = Literal["pass", "warn", "fail"]

MAX_BYTES = 1_000_000
AS_SUFFIX = "/.well-known/oauth-authorization-server"
PRM_SUFFIX = "/.well-known/oauth-protected-resource"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
URN_ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
GRANT_PROFILE_ID_JAG = "urn:ietf:params:oauth:grant-profile:id-jag"
# spec/protocol.md Changes in revision 2: the revision 1 code names and what replaced them. `invalid_issuer` stays right
# at the RFC 8935 events endpoint alone, which the doctor never calls.
REVISION_1_CODES = {
    "anonymous_not_enabled": "anonymous_registration_disabled",
    "service_auth_not_enabled": "service_auth_registration_disabled",
    "rate_limited": "rate_limit_exceeded",
    "invalid_issuer": "issuer_not_enabled",
}
RATE_LIMIT_CODES = ("rate_limit_exceeded", "rate_limited")
PROBE_EMAIL = "doctor-probe@example.com"  # RFC 2606: nobody receives anything there
PROBE_BOGUS_ASSERTION = "authmd-doctor.not-an-assertion.probe"
MAX_PROBED_ATTEMPTS = 5  # the attempt cap is probed only when it is this small
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
KNOWN_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "ES256K", "EdDSA", "Ed25519"}
)
KEY_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}
USER_AGENT = "authmd-doctor"

# References (ASCII: "sec" for the section sign).
R_TLS = "RFC 8414 sec 2; spec/protocol.md Resource, audience, issuer"
R_401 = "RFC 9728 sec 5.1; RFC 6750 sec 3"
R_PRM = "RFC 9728 sec 3.2"
R_PRM_RESOURCE = "RFC 9728 sec 3.3"
R_PRM_FIELDS = "RFC 9728 sec 2"
R_AS_FETCH = "RFC 8414 sec 3; spec/protocol.md What the official client needs 1"
R_AS_INSERTED = "RFC 8414 sec 3.1"
R_AS_ISSUER = "RFC 8414 sec 3.3"
R_AS_FIELDS = "RFC 8414 sec 2"
R_GRANT = "RFC 7523 sec 2.1; RFC 8414 sec 2"
R_REVOKE = "RFC 7009; RFC 8414 sec 2; spec/protocol.md Revocation and events"
R_INTROSPECT = "RFC 7662; RFC 8414 sec 2"
R_AGENT = "spec/protocol.md What the official client needs 1"
R_AGENT_DISCOVERY = "spec/protocol.md Discovery"
R_JWKS = "RFC 7517 sec 4-5; RFC 8414 sec 2"
R_JWKS_PRIVATE = "RFC 7517 sec 9.2; RFC 7518 sec 6"
R_AUTH_MD = "spec/protocol.md Discovery (GET /auth.md)"
R_CACHE = "RFC 9111 sec 5.2; RFC 9110 sec 8.8.3"
R_PROBE_REGISTER = "spec/protocol.md Registration"
R_PROBE_TOKEN = "spec/protocol.md Token exchange; RFC 6749 sec 5.1"
R_NO_STORE = "spec/protocol.md Registration (Cache-Control: no-store); RFC 6749 sec 5.1"
R_GRANT_PROFILES = "ID-JAG draft-04 sec 7; spec/protocol.md Authorization-server metadata"
R_ISSUERS = "spec/protocol.md Authorization-server metadata (issuers_supported)"
R_MAX_ATTEMPTS = "spec/protocol.md Authorization-server metadata (claim)"
R_ERRORS = "spec/protocol.md Errors (The body)"
R_ERROR_NAMES = "spec/protocol.md Changes in revision 2"
R_RETRY = "spec/protocol.md Errors; RFC 6585 sec 4; RFC 9110 sec 10.2.3"
R_PROBE_INVALID = "RFC 7523 sec 3.1; RFC 6749 sec 5.2"
R_PROBE_RESOURCE = "RFC 8707 sec 2; spec/protocol.md Resource, audience, issuer"
R_PROBE_CLAIM = "spec/protocol.md Claim (Start an attempt)"
R_PROBE_REVOKED = "spec/protocol.md Claim (Deny versus revoke)"

GROUPS = ("transport", "resource", "prm", "as", "agent_auth", "jwks", "auth_md", "cache", "probe", "errors")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", metavar="URL", help="an API URL (follows its 401) or an issuer")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--probe",
        action="store_true",
        help="also register one anonymous account, exchange it, start claim attempts for it, then revoke it",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    p.add_argument("--ca-file", help="PEM bundle of CAs to trust for https (default: the system's)")


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    status: Status
    message: str
    reference: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "status": self.status, "message": self.message, "reference": self.reference}


@dataclass(slots=True)
class Report:
    url: str
    mode: str = "issuer"
    issuer: str | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, id: str, status: Status, message: str, reference: str) -> None:
        self.checks.append(Check(id, status, message, reference))

    def ordered(self) -> list[Check]:
        def group(c: Check) -> int:
            head = c.id.split(".", 1)[0]
            return GROUPS.index(head) if head in GROUPS else len(GROUPS)

        return sorted(self.checks, key=group)  # stable: each group keeps its own order

    def summary(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in ("pass", "warn", "fail")}

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "mode": self.mode,
            "issuer": self.issuer,
            "checks": [c.as_dict() for c in self.ordered()],
            "summary": self.summary(),
            "notes": self.notes,
        }


def worst(statuses: Iterable[Status]) -> Status:
    found = set(statuses)
    return "fail" if "fail" in found else "warn" if "warn" in found else "pass"


# ---------------------------------------------------------------------------------------------------
# HTTP: capped, never raising anything but Problem/Unreachable
# ---------------------------------------------------------------------------------------------------


class Problem(Exception):
    """A reason a check fails (its message is the reason)."""


class Unreachable(Problem):
    """No HTTP answer at all (connection refused, DNS, TLS, timeout, not HTTP)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", "")).split(";", 1)[0].strip().lower()


def short(value: Any, limit: int = 60) -> str:
    """A value as it appears in a message: JSON-ish, truncated."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_url(value: Any) -> str:
    """``value`` if it is an absolute http(s) URL with a host, else Problem."""
    if not isinstance(value, str) or not value:
        raise Problem(f"not a URL: {short(value)}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise Problem(f"not a URL: {short(value)} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Problem(f"not an absolute http(s) URL: {short(value)}")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise Problem(f"URL contains whitespace or control characters: {short(value)}")
    return value


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def well_known(url: str, suffix: str) -> str:
    """RFC 8414 sec 3.1 / RFC 9728 sec 3.1: the suffix goes between host and path (trailing / dropped)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{suffix}{path}{query}"


def _label(method: str, url: str) -> str:
    """How a request is named in messages: the method and the path (the origin is the issuer's)."""
    return f"{method} {urlsplit(url).path or '/'}"


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


class Http:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.throttled: list[tuple[str, Fetched]] = []  # every 429, whatever asked (errors.retry_after)

    def request(self, method: str, url: str, **kwargs: Any) -> Fetched:
        http_url(url)
        try:
            with self.client.stream(method, url, **kwargs) as r:
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_BYTES:
                    raise Problem(f"{method} {url}: the response declares {declared} bytes (limit {MAX_BYTES})")
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise Problem(f"{method} {url}: the response is larger than {MAX_BYTES} bytes")
                got = Fetched(url, r.status_code, r.headers, bytes(body))
        except httpx.TransportError as exc:
            raise Unreachable(f"{method} {url}: {transport_reason(exc)}") from None
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError, ValueError) as exc:
            raise Problem(f"{method} {url}: {_describe(exc)}") from None
        if got.status == 429:
            self.throttled.append((_label(method, url), got))
        return got

    def get(self, url: str, accept: str = "application/json") -> Fetched:
        return self.request("GET", url, headers={"Accept": accept})

    def get_json(self, url: str) -> tuple[Fetched, dict[str, Any]]:
        """GET a JSON object: Problem unless 200 with a JSON object body."""
        got = self.get(url)
        if got.status != 200:
            where = f" -> {got.headers.get('location')}" if 300 <= got.status < 400 else ""
            raise Problem(f"GET {url} answered {got.status}{where} (expected 200; redirects are not followed)")
        return got, json_object(got)


def json_object(got: Fetched) -> dict[str, Any]:
    try:
        doc = json.loads(got.body)
    except (ValueError, RecursionError) as exc:
        raise Problem(f"{got.url}: the body is not JSON ({short(str(exc), 80)})") from None
    if not isinstance(doc, dict):
        raise Problem(f"{got.url}: the body is JSON but not an object ({type(doc).__name__})")
    return doc


# ---------------------------------------------------------------------------------------------------
# WWW-Authenticate (RFC 9110 sec 11.6.1)
# ---------------------------------------------------------------------------------------------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME = re.compile(rf"[\s,]*({_TOKEN})")
_PARAM = re.compile(rf'[\s,]*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN})')


def parse_challenges(values: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """[(scheme lower-cased, {param lower-cased: value})] of every challenge in the header values."""
    out: list[tuple[str, dict[str, str]]] = []
    for value in values:
        pos = 0
        while True:
            m = _SCHEME.match(value, pos)
            if not m:
                break
            params: dict[str, str] = {}
            pos = m.end()
            while p := _PARAM.match(value, pos):
                raw = p.group(2)
                params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
                pos = p.end()
            out.append((m.group(1).lower(), params))
    return out


# ---------------------------------------------------------------------------------------------------
# /auth.md fenced blocks
# ---------------------------------------------------------------------------------------------------

_OPEN_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_CLOSE_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")


def json_examples(markdown: str) -> list[tuple[str, str]]:
    """[(NAME, body)] of every fenced block whose info string is `json example=NAME` (CommonMark fences)."""
    out: list[tuple[str, str]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        m = _OPEN_FENCE.match(lines[i])
        i += 1
        if not m or (m.group(1)[0] == "`" and "`" in m.group(2)):
            continue
        fence, words = m.group(1), m.group(2).split()
        body: list[str] = []
        while i < len(lines):
            c = _CLOSE_FENCE.match(lines[i])
            i += 1
            if c and c.group(1)[0] == fence[0] and len(c.group(1)) >= len(fence):
                break
            body.append(lines[i - 1])
        if words and words[0].lower() == "json":
            for word in words[1:]:
                if word.startswith("example="):
                    out.append((word.removeprefix("example=").strip("\"'"), "\n".join(body)))
    return out


# ---------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    """A metadata document that parsed as a JSON object, with the response that carried it."""

    fetched: Fetched
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SeenError:
    """An error response the doctor met (errors.*): ``strict`` when the protocol's JSON error body is
    required (the authorization server's endpoints), not for a resource server's 401 (RFC 6750 puts the
    error in the header)."""

    label: str
    fetched: Fetched
    strict: bool


class Doctor:
    def __init__(self, http: Http, url: str, *, probe: bool = False) -> None:
        self.http = http
        self.url = url
        self.probe = probe
        self.report = Report(url)
        self.cached: list[tuple[str, Fetched]] = []  # (cache check name, response) for cache.*
        self.prm: Document | None = None
        self.as_meta: Document | None = None
        self.seen_errors: list[SeenError] = []
        self.max_live_attempts: int | None = None  # agent_auth.claim.max_live_attempts, when well formed

    # -- plumbing ------------------------------------------------------------------------------------

    def add(self, id: str, status: Status, message: str, reference: str) -> None:
        self.report.add(id, status, message, reference)

    def saw(self, label: str, got: Fetched, *, strict: bool = True) -> None:
        """An error response, for errors.* (a 2xx or 3xx is not recorded)."""
        if got.status >= 400:
            self.seen_errors.append(SeenError(label, got, strict))

    def guarded(self, group: str, fn: Callable[[], None]) -> None:
        """Run one check group; anything it did not expect becomes a FAIL `{group}.error`, never a crash."""
        try:
            fn()
        except Problem as exc:
            self.add(f"{group}.error", "fail", str(exc), "")
        except Exception as exc:  # garbage in must not crash the doctor
            self.add(f"{group}.error", "fail", f"unexpected {_describe(exc)}", "")

    @property
    def dev(self) -> bool:
        """spec/protocol.md "dev mode": the issuer is http:// on a loopback address."""
        issuer = self.report.issuer
        if not issuer:
            return False
        parts = urlsplit(issuer)
        return parts.scheme == "http" and is_loopback(parts.hostname)

    # -- the run -------------------------------------------------------------------------------------

    def run(self) -> Report:
        """Raises Unreachable when the URL gives no HTTP answer at all."""
        try:
            start: Fetched | None = self.http.get(self.url)
        except Unreachable:
            raise
        except Problem as exc:  # an answer, but not one to read (too large, bad encoding): not an API 401
            self.report.notes.append(f"GET URL: {exc}")
            start = None
        path = urlsplit(self.url).path
        if AS_SUFFIX in path:
            issuer = self.issuer_from_as_url(self.url)
            self.report.notes.append(f"URL is an authorization-server metadata URL; issuer taken as {issuer}")
            self.report.issuer = issuer
        elif path.startswith(PRM_SUFFIX):
            self.report.mode = "resource-metadata"
            self.guarded("prm", lambda: self.check_prm(self.url, started_from=None))
        elif start is not None and start.status == 401:
            api_response = start
            self.report.mode = "api"
            self.guarded("resource", lambda: self.check_api(api_response))
        else:
            self.report.issuer = self.normalized_issuer(self.url)
            answered = f"answered {start.status}" if start else "gave no usable answer"
            self.report.notes.append(
                f"GET URL {answered}, not 401: URL taken as the issuer "
                "(start from an API URL to check its 401 challenge)"
            )

        self.guarded("transport", self.check_transport)
        if self.report.issuer is None:
            self.report.notes.append("no issuer found: the authorization-server checks did not run")
            return self.report
        if self.report.mode == "issuer":
            self.guarded("prm", self.check_issuer_prm)
        self.guarded("as", self.check_as_metadata)
        if self.as_meta is not None:
            self.guarded("agent_auth", self.check_agent_auth)
            self.guarded("jwks", self.check_jwks)
        self.guarded("auth_md", self.check_auth_md)
        self.guarded("cache", self.check_caching)
        if self.probe:
            self.guarded("probe", self.check_probe)
        self.guarded("errors", self.check_errors)
        return self.report

    @staticmethod
    def normalized_issuer(url: str) -> str:
        """The user's URL as an issuer: only a bare trailing `/` (an empty path) is dropped."""
        parts = urlsplit(url)
        return url[:-1] if parts.path == "/" and not parts.query and url.endswith("/") else url

    @staticmethod
    def issuer_from_as_url(url: str) -> str:
        parts = urlsplit(url)
        if parts.path.endswith(AS_SUFFIX):  # appended: {issuer}/.well-known/...
            return f"{parts.scheme}://{parts.netloc}{parts.path.removesuffix(AS_SUFFIX)}"
        return f"{parts.scheme}://{parts.netloc}{parts.path.removeprefix(AS_SUFFIX)}"  # path-inserted

    # -- transport -----------------------------------------------------------------------------------

    def check_transport(self) -> None:
        urls = {"URL": self.url}
        if self.prm is not None:
            urls["resource metadata"] = self.prm.fetched.url
        if self.report.issuer:
            urls["issuer"] = self.report.issuer
        plain = {name: u for name, u in urls.items() if urlsplit(u).scheme == "http"}
        bad = {name: u for name, u in plain.items() if not is_loopback(urlsplit(u).hostname)}
        if bad:
            names = ", ".join(f"{n} {u}" for n, u in bad.items())
            self.add("transport.tls", "fail", f"plain http on a non-loopback host: {names}", R_TLS)
        elif plain:
            self.add("transport.tls", "pass", "plain http only on loopback (dev mode)", R_TLS)
        else:
            self.add("transport.tls", "pass", "https throughout", R_TLS)

    # -- the resource's 401 and its metadata (RFC 9728) --------------------------------------------

    def check_api(self, start: Fetched) -> None:
        """The 401 of an unauthenticated GET must name the metadata; follow it (or derive it)."""
        self.saw(_label("GET", start.url), start, strict=False)
        challenges = parse_challenges(start.headers.get_list("www-authenticate"))
        bearer = [params for scheme, params in challenges if scheme == "bearer"]
        metadata_url: str | None = None
        if not challenges:
            self.add("resource.401", "fail", "401 without a WWW-Authenticate header", R_401)
        elif not bearer:
            schemes = ", ".join(s for s, _ in challenges)
            self.add("resource.401", "fail", f"401 challenges {schemes}, no Bearer", R_401)
        elif "resource_metadata" not in bearer[0]:
            self.add("resource.401", "fail", "401 Bearer challenge without resource_metadata", R_401)
        else:
            try:
                metadata_url = http_url(bearer[0]["resource_metadata"])
            except Problem as exc:
                self.add("resource.401", "fail", f"resource_metadata: {exc}", R_401)
            else:
                self.add("resource.401", "pass", f'401 with Bearer resource_metadata="{metadata_url}"', R_401)
        if metadata_url is None:
            metadata_url = self.derive_prm_url(self.url)
            if metadata_url is None:
                self.add("prm.fetch", "fail", "no resource_metadata and none at the RFC 9728 sec 3.1 URLs", R_PRM)
                return
            self.report.notes.append(f"resource metadata found by RFC 9728 sec 3.1 derivation: {metadata_url}")
        self.check_prm(metadata_url, started_from=self.url)

    def derive_prm_url(self, url: str) -> str | None:
        """RFC 9728 sec 3.1 from the URL, then from each shorter path prefix, down to the origin."""
        parts = urlsplit(url)
        segments = [s for s in parts.path.split("/") if s]
        for n in range(len(segments), -1, -1):
            candidate = f"{parts.scheme}://{parts.netloc}{PRM_SUFFIX}" + "".join(f"/{s}" for s in segments[:n])
            try:
                if self.http.get(candidate).status == 200:
                    return candidate
            except Problem:
                return None
            if len(segments) - n >= 4:
                break
        return None

    @staticmethod
    def resource_for(metadata_url: str) -> str | None:
        """The resource identifier a well-known metadata URL was derived from (RFC 9728 sec 3.1), if any."""
        parts = urlsplit(metadata_url)
        if not parts.path.startswith(PRM_SUFFIX):
            return None
        rest = parts.path.removeprefix(PRM_SUFFIX)
        if rest and not rest.startswith("/"):
            return None
        query = f"?{parts.query}" if parts.query else ""
        return f"{parts.scheme}://{parts.netloc}{rest}{query}"

    def check_prm(self, metadata_url: str, *, started_from: str | None, expect_as: str | None = None) -> None:
        try:
            got, doc = self.http.get_json(metadata_url)
        except Problem as exc:
            self.add("prm.fetch", "fail", str(exc), R_PRM)
            return
        self.prm = Document(got, doc)
        self.cached.append(("prm", got))
        self.add("prm.fetch", "pass", f"{metadata_url}: 200, a JSON object", R_PRM)

        resource, expected = doc.get("resource"), self.resource_for(metadata_url)
        if not isinstance(resource, str):
            self.add("prm.resource", "fail", f"resource is missing or not a string: {short(resource)}", R_PRM_RESOURCE)
        elif expected is None:
            self.add(
                "prm.resource",
                "warn",
                f"resource is {short(resource)}; the metadata URL is not a {PRM_SUFFIX} URL to compare it with",
                R_PRM_RESOURCE,
            )
        elif resource != expected:
            self.add(
                "prm.resource",
                "fail",
                f"resource is {short(resource)}, but the metadata URL was derived from {expected}",
                R_PRM_RESOURCE,
            )
        elif started_from and not _covers(resource, started_from):
            self.add(
                "prm.resource", "warn", f"resource {resource} does not cover the URL {started_from}", R_PRM_RESOURCE
            )
        else:
            self.add("prm.resource", "pass", f"resource is exactly {resource}", R_PRM_RESOURCE)

        servers = doc.get("authorization_servers")
        if not isinstance(servers, list) or not servers or not all(isinstance(s, str) for s in servers):
            self.add(
                "prm.authorization_servers",
                "fail",
                f"authorization_servers must be a non-empty list of issuer URLs: {short(servers)}",
                R_PRM_FIELDS,
            )
        else:
            try:
                issuer = http_url(servers[0])
            except Problem as exc:
                self.add("prm.authorization_servers", "fail", f"authorization_servers[0]: {exc}", R_PRM_FIELDS)
            else:
                if expect_as is not None and expect_as not in servers:
                    self.add(
                        "prm.authorization_servers",
                        "warn",
                        f"authorization_servers {short(servers)} does not list the issuer {expect_as}",
                        R_PRM_FIELDS,
                    )
                else:
                    more = f" (and {len(servers) - 1} more; checking the first)" if len(servers) > 1 else ""
                    self.add("prm.authorization_servers", "pass", f"authorization server {issuer}{more}", R_PRM_FIELDS)
                if self.report.issuer is None:
                    self.report.issuer = issuer

        if "jwks_uri" in doc:
            try:
                jwks_url = http_url(doc["jwks_uri"])
                _, jwks = self.http.get_json(jwks_url)
                keys = jwks.get("keys")
                if not isinstance(keys, list):
                    raise Problem(f"{jwks_url}: no keys list")
                private = [m for k in keys if isinstance(k, dict) for m in PRIVATE_MEMBERS if m in k]
                if private:
                    raise Problem(f"{jwks_url} publishes private key members {sorted(set(private))}")
                self.add("prm.jwks_uri", "pass", f"{jwks_url}: a JWK set of {len(keys)} key(s)", R_PRM_FIELDS)
            except Problem as exc:
                self.add("prm.jwks_uri", "fail", f"jwks_uri: {exc}", R_PRM_FIELDS)

    def check_issuer_prm(self) -> None:
        """Started from the issuer: its own RFC 9728 document (resource = the issuer) is checked if served."""
        assert self.report.issuer is not None
        url = well_known(self.report.issuer, PRM_SUFFIX)
        got = self.http.get(url)
        if got.status == 404:
            self.report.notes.append(f"no protected-resource metadata for the issuer at {url} (optional)")
            return
        self.check_prm(url, started_from=None, expect_as=self.report.issuer)

    # -- authorization-server metadata (RFC 8414) ------------------------------------------------------

    def check_as_metadata(self) -> None:
        issuer = self.report.issuer
        assert issuer is not None
        url = issuer.rstrip("/") + AS_SUFFIX
        try:
            got, meta = self.http.get_json(url)
        except Problem as exc:
            self.add("as.fetch", "fail", str(exc), R_AS_FETCH)
            return
        self.as_meta = Document(got, meta)
        self.cached.append(("as_metadata", got))
        self.add("as.fetch", "pass", f"{url}: 200, a JSON object", R_AS_FETCH)

        if urlsplit(issuer).path.strip("/"):
            self.check_path_inserted(issuer, meta)

        found = meta.get("issuer")
        parts = urlsplit(issuer)
        if found != issuer:
            self.add(
                "as.issuer", "fail", f"issuer is {short(found)}, fetched for {issuer} (must be identical)", R_AS_ISSUER
            )
        elif parts.query or parts.fragment:
            self.add("as.issuer", "fail", "the issuer must have no query or fragment", R_AS_FIELDS)
        else:
            self.add("as.issuer", "pass", f"issuer is exactly {issuer}", R_AS_ISSUER)

        missing = [k for k in ("issuer", "token_endpoint", "response_types_supported") if k not in meta]
        wrong = [] if isinstance(meta.get("response_types_supported", []), list) else ["response_types_supported"]
        if missing or wrong:
            why = "; ".join(
                x for x in (f"missing {missing}" if missing else "", f"not lists {wrong}" if wrong else "") if x
            )
            self.add("as.required", "fail", why, R_AS_FIELDS)
        else:
            self.add("as.required", "pass", "issuer, token_endpoint, response_types_supported present", R_AS_FIELDS)

        if "jwks_uri" not in meta:
            self.add("as.jwks_uri", "warn", "no jwks_uri: resource servers cannot verify tokens offline", R_AS_FIELDS)
        else:
            self.add("as.jwks_uri", "pass", f"jwks_uri {short(meta['jwks_uri'])}", R_AS_FIELDS)

        grants = meta.get("grant_types_supported")
        if not isinstance(grants, list):
            self.add(
                "as.grant_types",
                "fail",
                "grant_types_supported absent (defaults to authorization_code, implicit): no jwt-bearer",
                R_GRANT,
            )
        elif JWT_BEARER not in grants:
            self.add("as.grant_types", "fail", f"grant_types_supported {short(grants)} lacks {JWT_BEARER}", R_GRANT)
        else:
            self.add("as.grant_types", "pass", "grant_types_supported lists jwt-bearer", R_GRANT)

        for key, ref in (("revocation_endpoint", R_REVOKE), ("introspection_endpoint", R_INTROSPECT)):
            if key in meta:
                self.add(f"as.{key}", "pass", f"{key} {short(meta[key])}", ref)
            else:
                self.add(f"as.{key}", "warn", f"no {key}", ref)

        self.check_endpoints(meta, issuer)

    def check_path_inserted(self, issuer: str, appended: dict[str, Any]) -> None:
        url = well_known(issuer, AS_SUFFIX)
        try:
            got = self.http.get(url)
            if got.status == 404:
                self.add("as.path_inserted", "warn", f"{url}: 404 (RFC 8414 clients look there)", R_AS_INSERTED)
                return
            _, meta = self.http.get_json(url)
        except Problem as exc:
            self.add("as.path_inserted", "fail", str(exc), R_AS_INSERTED)
            return
        if meta.get("issuer") != issuer:
            self.add("as.path_inserted", "fail", f"{url}: issuer is {short(meta.get('issuer'))}", R_AS_INSERTED)
        elif meta != appended:
            self.add("as.path_inserted", "warn", f"{url} differs from the appended form", R_AS_INSERTED)
        else:
            self.add("as.path_inserted", "pass", f"{url} serves the same metadata", R_AS_INSERTED)

    def check_endpoints(self, meta: dict[str, Any], issuer: str) -> None:
        """Every endpoint URL is https (http only on loopback in dev mode) and on the issuer's origin."""
        bad: list[str] = []
        plain: list[str] = []
        foreign: list[str] = []
        for name, value in _endpoint_urls(meta):
            try:
                url = http_url(value)
            except Problem as exc:
                bad.append(f"{name}: {exc}")
                continue
            parts = urlsplit(url)
            if parts.scheme == "http" and not (self.dev and is_loopback(parts.hostname)):
                plain.append(name)
            if not name.endswith(("skill", "service_documentation")) and origin(url) != origin(issuer):
                foreign.append(name)
        if bad or plain:
            why = "; ".join([*bad, *([f"plain http: {', '.join(plain)}"] if plain else [])])
            self.add("as.endpoints_https", "fail", why, R_AS_FIELDS)
        else:
            mode = " (http on loopback: dev mode)" if self.dev else ""
            self.add("as.endpoints_https", "pass", f"every endpoint URL is well formed and https{mode}", R_AS_FIELDS)
        if foreign:
            self.add("as.endpoints_origin", "warn", f"not on {origin(issuer)}: {', '.join(foreign)}", R_AS_FIELDS)
        else:
            self.add("as.endpoints_origin", "pass", f"every endpoint is on {origin(issuer)}", R_AS_FIELDS)

    # -- agent_auth (spec/protocol.md) -------------------------------------------------------------------------

    def check_agent_auth(self) -> None:
        assert self.as_meta is not None
        block = self.as_meta.doc.get("agent_auth")
        if not isinstance(block, dict):
            why = "missing" if block is None else f"not an object: {short(block)}"
            self.add("agent_auth.present", "fail", f"agent_auth {why}: the official client cannot register", R_AGENT)
            return
        self.add("agent_auth.present", "pass", "agent_auth block present", R_AGENT)

        for key in ("identity_endpoint", "claim_endpoint"):
            try:
                url = http_url(block.get(key))
            except Problem as exc:
                why = "missing" if key not in block else str(exc)
                self.add(f"agent_auth.{key}", "fail", f"{key}: {why}", R_AGENT)
            else:
                self.add(f"agent_auth.{key}", "pass", f"{key} {url}", R_AGENT)

        types = block.get("identity_types_supported")
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            self.add(
                "agent_auth.identity_types",
                "fail",
                f"identity_types_supported must be a list of strings: {short(types)}",
                R_AGENT,
            )
            types = []
        elif "service_auth" not in types:
            self.add(
                "agent_auth.identity_types",
                "warn",
                f"{short(types)} lacks service_auth: the official client given an email silently registers anonymously",
                R_AGENT,
            )
        else:
            self.add("agent_auth.identity_types", "pass", f"identity_types_supported {short(types)}", R_AGENT)

        ia = block.get("identity_assertion")
        if "identity_assertion" in types:
            supported = ia.get("assertion_types_supported") if isinstance(ia, dict) else None
            if isinstance(supported, list) and URN_ID_JAG in supported:
                self.add("agent_auth.id_jag", "pass", "identity_assertion lists the ID-JAG URN", R_AGENT)
            else:
                self.add(
                    "agent_auth.id_jag",
                    "fail",
                    f"identity_assertion offered, but identity_assertion.assertion_types_supported lacks {URN_ID_JAG}",
                    R_AGENT,
                )
        elif ia is not None:
            self.add(
                "agent_auth.id_jag",
                "warn",
                "an identity_assertion block, but identity_types_supported does not list identity_assertion",
                R_AGENT,
            )
        supported = ia.get("assertion_types_supported") if isinstance(ia, dict) else None
        accepts_id_jag = isinstance(supported, list) and URN_ID_JAG in supported
        self.check_grant_profiles(accepts_id_jag)
        self.check_trust_list(ia, accepts_id_jag)
        self.check_claim_metadata(block.get("claim"))

        if "skill" not in block:
            self.add(
                "agent_auth.skill",
                "warn",
                f"no skill (the agents' /auth.md); using {self.auth_md_url()}",
                R_AGENT_DISCOVERY,
            )
        else:
            try:
                self.add("agent_auth.skill", "pass", f"skill {http_url(block['skill'])}", R_AGENT_DISCOVERY)
            except Problem as exc:
                self.add("agent_auth.skill", "fail", f"skill: {exc}", R_AGENT_DISCOVERY)

        problems: list[str] = []
        if "events_endpoint" in block:
            try:
                http_url(block["events_endpoint"])
            except Problem as exc:
                problems.append(f"events_endpoint: {exc}")
        events = block.get("events_supported")
        if events is not None and (not isinstance(events, list) or not all(isinstance(e, str) for e in events)):
            problems.append(f"events_supported must be a list of event URIs: {short(events)}")
        if problems:
            self.add("agent_auth.events", "fail", "; ".join(problems), R_AGENT_DISCOVERY)
        elif "events_endpoint" in block:
            self.add("agent_auth.events", "pass", f"events_endpoint {block['events_endpoint']}", R_AGENT_DISCOVERY)
        else:
            self.add(
                "agent_auth.events",
                "pass",
                "no events_endpoint (needed only with identity providers)",
                R_AGENT_DISCOVERY,
            )

    def check_grant_profiles(self, accepts_id_jag: bool) -> None:
        """RFC 8414 `authorization_grant_profiles_supported` (ID-JAG draft sec 7): MCP clients look there."""
        assert self.as_meta is not None
        meta = self.as_meta.doc
        key = "authorization_grant_profiles_supported"
        if key not in meta:
            if accepts_id_jag:
                self.add(
                    "as.grant_profiles",
                    "warn",
                    f"ID-JAGs are accepted but {key} is missing (MCP clients look for {GRANT_PROFILE_ID_JAG})",
                    R_GRANT_PROFILES,
                )
            return
        profiles = meta[key]
        if not isinstance(profiles, list) or not all(isinstance(x, str) and x for x in profiles):
            self.add(
                "as.grant_profiles", "fail", f"{key} must be a list of profile URIs: {short(profiles)}", R_AS_FIELDS
            )
        elif accepts_id_jag and GRANT_PROFILE_ID_JAG not in profiles:
            self.add(
                "as.grant_profiles",
                "warn",
                f"ID-JAGs are accepted but {key} {short(profiles)} lacks {GRANT_PROFILE_ID_JAG}",
                R_GRANT_PROFILES,
            )
        elif not accepts_id_jag and GRANT_PROFILE_ID_JAG in profiles:
            self.add(
                "as.grant_profiles",
                "warn",
                f"{key} lists {GRANT_PROFILE_ID_JAG}, but assertion_types_supported lacks {URN_ID_JAG}",
                R_GRANT_PROFILES,
            )
        else:
            self.add("as.grant_profiles", "pass", f"{key} {short(profiles, 100)}", R_GRANT_PROFILES)

    def check_trust_list(self, ia: Any, accepts_id_jag: bool) -> None:
        """`identity_assertion.issuers_supported`: [{issuer, name}], so an agent knows before trying."""
        if not isinstance(ia, dict) or "issuers_supported" not in ia:
            if accepts_id_jag:
                self.add(
                    "agent_auth.issuers",
                    "warn",
                    "ID-JAGs are accepted but no trust list is published (identity_assertion.issuers_supported): "
                    "an agent cannot tell whether its provider is trusted before trying",
                    R_ISSUERS,
                )
            return
        entries = ia["issuers_supported"]
        if not isinstance(entries, list):
            self.add("agent_auth.issuers", "fail", f"issuers_supported is not a list: {short(entries)}", R_ISSUERS)
            return
        findings = [
            f for i, entry in enumerate(entries) for f in _trust_entry_findings(f"issuers_supported[{i}]", entry)
        ]
        issuers = [e["issuer"] for e in entries if isinstance(e, dict) and isinstance(e.get("issuer"), str)]
        if len(set(issuers)) != len(issuers):
            findings.append(("warn", "an issuer is listed twice"))
        if not entries and accepts_id_jag:
            findings.append(("warn", "issuers_supported is empty, so every ID-JAG is refused"))
        if findings:
            self.add("agent_auth.issuers", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_ISSUERS)
        else:
            names = ", ".join(str(e["name"]) for e in entries)
            self.add(
                "agent_auth.issuers", "pass", f"a trust list of {len(entries)} issuer(s): {short(names, 80)}", R_ISSUERS
            )

    def check_claim_metadata(self, claim: Any) -> None:
        """*ext* `agent_auth.claim.max_live_attempts`: a positive integer when present."""
        if not isinstance(claim, dict) or "max_live_attempts" not in claim:
            return
        value = claim["max_live_attempts"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.add(
                "agent_auth.max_live_attempts",
                "fail",
                f"claim.max_live_attempts must be a positive integer: {short(value)}",
                R_MAX_ATTEMPTS,
            )
            return
        self.max_live_attempts = value
        self.add("agent_auth.max_live_attempts", "pass", f"up to {value} claim attempt(s) live at once", R_MAX_ATTEMPTS)

    # -- JWKS ---------------------------------------------------------------------------------------------

    def check_jwks(self) -> None:
        assert self.as_meta is not None
        if "jwks_uri" not in self.as_meta.doc:
            return
        try:
            url = http_url(self.as_meta.doc["jwks_uri"])
            got, doc = self.http.get_json(url)
        except Problem as exc:
            self.add("jwks.fetch", "fail", str(exc), R_JWKS)
            return
        self.cached.append(("jwks", got))
        keys = doc.get("keys")
        if not isinstance(keys, list):
            self.add("jwks.fetch", "fail", f"{url}: no keys list", R_JWKS)
            return
        if not keys:
            self.add("jwks.fetch", "fail", f"{url}: the keys list is empty (nothing can be verified)", R_JWKS)
            return
        self.add("jwks.fetch", "pass", f"{url}: {len(keys)} key(s)", R_JWKS)

        findings: list[tuple[Status, str]] = []
        private: list[str] = []
        kids: list[str] = []
        for i, key in enumerate(keys):
            label = f"keys[{i}]"
            if not isinstance(key, dict):
                findings.append(("fail", f"{label} is not an object"))
                continue
            private += [f"{label}.{m}" for m in PRIVATE_MEMBERS if m in key]
            findings += list(_key_findings(label, key))
            if isinstance(key.get("kid"), str):
                kids.append(key["kid"])
        if len(set(kids)) != len(kids):
            findings.append(("warn", "duplicate kid values"))
        if findings:
            self.add("jwks.keys", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_JWKS)
        else:
            self.add("jwks.keys", "pass", "every key has kty, kid and a sane use/alg", R_JWKS)
        if private:
            self.add("jwks.private", "fail", f"private key material published: {', '.join(private)}", R_JWKS_PRIVATE)
        else:
            self.add("jwks.private", "pass", "public members only", R_JWKS_PRIVATE)

    # -- /auth.md -----------------------------------------------------------------------------------------

    def auth_md_url(self) -> str:
        skill = self.as_meta.doc.get("agent_auth", {}) if self.as_meta else {}
        skill = skill.get("skill") if isinstance(skill, dict) else None
        if isinstance(skill, str):
            try:
                return http_url(skill)
            except Problem:
                pass
        assert self.report.issuer is not None
        return self.report.issuer.rstrip("/") + "/auth.md"

    def check_auth_md(self) -> None:
        url = self.auth_md_url()
        try:
            got = self.http.get(url, accept="text/markdown, text/plain;q=0.9")
        except Problem as exc:
            self.add("auth_md.fetch", "fail", str(exc), R_AUTH_MD)
            return
        if got.status != 200:
            self.add("auth_md.fetch", "fail", f"{url} answered {got.status} (the prose contract is missing)", R_AUTH_MD)
            return
        self.cached.append(("auth_md", got))
        if got.content_type in ("text/markdown", "text/plain"):
            self.add("auth_md.fetch", "pass", f"{url}: 200 {got.content_type}", R_AUTH_MD)
        else:
            self.add("auth_md.fetch", "warn", f"{url}: 200 but {got.content_type or 'no Content-Type'}", R_AUTH_MD)
        text = got.text()

        issuer = self.report.issuer or ""
        block = self.as_meta.doc.get("agent_auth") if self.as_meta else None
        identity = block.get("identity_endpoint") if isinstance(block, dict) else None
        findings: list[tuple[Status, str]] = []
        if issuer not in text:
            findings.append(("warn", f"does not mention the issuer {issuer}"))
        if isinstance(identity, str) and identity:
            if identity in text:
                pass
            elif (path := urlsplit(identity).path) and path in text:
                findings.append(("warn", f"names the identity endpoint only by its path {path}"))
            else:
                findings.append(("fail", f"does not mention the identity endpoint {identity}"))
        if findings:
            self.add("auth_md.mentions", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_AUTH_MD)
        else:
            self.add("auth_md.mentions", "pass", "mentions the issuer and the identity endpoint", R_AUTH_MD)

        # Agents that read /auth.md script against the codes it names. `invalid_issuer` is left out: it
        # stays right for the RFC 8935 events endpoint, which the prose may well document.
        old = [
            f"{code} (revision 2: {REVISION_1_CODES[code]})"
            for code in ("anonymous_not_enabled", "service_auth_not_enabled", "rate_limited")
            if re.search(rf"(?<![A-Za-z0-9_]){code}(?![A-Za-z0-9_])", text)
        ]
        if old:
            self.add(
                "auth_md.error_codes", "warn", f"documents revision 1 error codes: {', '.join(old)}", R_ERROR_NAMES
            )
        else:
            self.add("auth_md.error_codes", "pass", "names no revision 1 error code", R_ERROR_NAMES)

        examples = json_examples(text)
        parsed: dict[str, Any] = {}
        broken: list[str] = []
        for name, body in examples:
            try:
                parsed[name] = json.loads(body)
            except (ValueError, RecursionError):
                broken.append(name)
        if broken:
            self.add("auth_md.examples", "warn", f"json examples that do not parse: {', '.join(broken)}", R_AUTH_MD)
        elif examples:
            self.add("auth_md.examples", "pass", f"{len(examples)} json example(s), all parse", R_AUTH_MD)
        else:
            self.add("auth_md.examples", "pass", "no `json example=NAME` blocks", R_AUTH_MD)

        for check_id, name, live in (
            ("auth_md.as_example", "authorization-server-metadata", self.as_meta),
            ("auth_md.prm_example", "protected-resource-metadata", self.prm),
        ):
            if name in parsed and live is not None:
                diff = _key_diff(parsed[name], live.doc)
                if diff:
                    self.add(check_id, "warn", f"example {name} differs from the live document: {diff}", R_AUTH_MD)
                else:
                    self.add(check_id, "pass", f"example {name} has the live document's keys", R_AUTH_MD)

    # -- caching ------------------------------------------------------------------------------------------

    def check_caching(self) -> None:
        for name, got in self.cached:
            cache_control = got.headers.get("cache-control")
            etag = got.headers.get("etag")
            missing = [h for h, v in (("Cache-Control", cache_control), ("ETag", etag)) if not v]
            if missing:
                have = f"; Cache-Control: {cache_control}" if cache_control else ""
                self.add(f"cache.{name}", "warn", f"{got.url}: no {' and no '.join(missing)}{have}", R_CACHE)
            else:
                self.add(f"cache.{name}", "pass", f"Cache-Control: {cache_control}; ETag present", R_CACHE)

    # -- the live probe (--probe) ---------------------------------------------------------------------

    def check_probe(self) -> None:
        block = self.as_meta.doc.get("agent_auth") if self.as_meta else None
        if not isinstance(block, dict):
            self.add("probe.register", "fail", "no agent_auth block to probe", R_PROBE_REGISTER)
            return
        types = block.get("identity_types_supported")
        if isinstance(types, list) and "anonymous" not in types:
            self.add("probe.register", "warn", "anonymous registration not offered: nothing probed", R_PROBE_REGISTER)
            return
        try:
            url = http_url(block.get("identity_endpoint"))
            got = self.http.request("POST", url, json={"type": "anonymous"}, headers={"Accept": "application/json"})
        except Problem as exc:
            self.add("probe.register", "fail", f"identity_endpoint: {exc}", R_PROBE_REGISTER)
            return
        if got.status != 200:
            self.saw(_label("POST", url), got)
            code = _error_code(got)
            status: Status = "warn" if code in ("proof_of_work_required", *RATE_LIMIT_CODES) else "fail"
            self.add(
                "probe.register", status, f"POST {url} answered {got.status} {code or ''}".rstrip(), R_PROBE_REGISTER
            )
            return
        try:
            reg = json_object(got)
        except Problem as exc:
            self.add("probe.register", "fail", str(exc), R_PROBE_REGISTER)
            return
        problems = list(_registration_problems(reg))
        status = worst(s for s, _ in problems) if problems else "pass"
        self.add(
            "probe.register",
            status,
            "; ".join(m for _, m in problems) or f"200 in the nested shape (id {short(reg.get('id'), 40)})",
            R_PROBE_REGISTER,
        )
        self.add("probe.no_store", *_no_store(got, "registration"), R_NO_STORE)
        identity = reg.get("identity")
        assertion = identity.get("assertion") if isinstance(identity, dict) else None
        if not isinstance(assertion, str):
            return
        claim = _ProbeClaim.of(reg, block, self.report.issuer or url)
        claim_probed = False
        revoked = False
        try:
            self.probe_token(assertion)
            self.guarded("probe", lambda: self.probe_resource(assertion))
            self.guarded("probe", self.probe_invalid_grant)
            if claim is not None:
                claim_probed = self.probe_claim(claim)
        finally:
            revoked = self.probe_cleanup(assertion)
        if claim is not None and claim_probed and revoked:
            self.probe_revoked_claim(claim)

    def probe_token(self, assertion: str) -> None:
        assert self.as_meta is not None
        try:
            url = http_url(self.as_meta.doc.get("token_endpoint"))
            form = {"grant_type": JWT_BEARER, "assertion": assertion}
            got = self.http.request("POST", url, data=form, headers={"Accept": "application/json"})
            if got.status != 200:
                self.saw(_label("POST", url), got)
                raise Problem(f"POST {url} answered {got.status} {_error_code(got) or ''}".rstrip())
            body = json_object(got)
        except Problem as exc:
            self.add("probe.token", "fail", f"token_endpoint: {exc}", R_PROBE_TOKEN)
            return
        problems: list[str] = []
        if not isinstance(body.get("access_token"), str) or not body.get("access_token"):
            problems.append("no access_token")
        if not isinstance(body.get("token_type"), str) or body["token_type"].lower() != "bearer":
            problems.append(f"token_type {short(body.get('token_type'))} (expected Bearer)")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            problems.append(f"expires_in {short(expires_in)} is not a number (the official client crashes)")
        if problems:
            self.add("probe.token", "fail", "; ".join(problems), R_PROBE_TOKEN)
        else:
            self.add("probe.token", "pass", f"access_token, Bearer, expires_in {expires_in}", R_PROBE_TOKEN)
        status, message = _no_store(got, "token response")
        if status != "pass":
            self.add("probe.token_no_store", status, message, R_NO_STORE)

    def probe_resource(self, assertion: str) -> None:
        """Revision 2 (RFC 8707): `resource` naming a URI below the protected resource names that resource,
        and the token's `aud` is the resource's own identifier. Only when started from an API URL (the
        resource its metadata names is one tokens are for; an issuer's own metadata may not be)."""
        assert self.as_meta is not None
        if self.report.mode != "api":
            return
        resource = self.prm.doc.get("resource") if self.prm is not None else None
        if not isinstance(resource, str) or urlsplit(resource).query or urlsplit(resource).fragment:
            return
        below = resource.rstrip("/") + "/authmd-doctor-probe"
        url = http_url(self.as_meta.doc.get("token_endpoint"))
        form = {"grant_type": JWT_BEARER, "assertion": assertion, "resource": below}
        got = self.http.request("POST", url, data=form, headers={"Accept": "application/json"})
        if got.status != 200:
            self.saw(_label("POST", url), got)
            code = _error_code(got)
            self.add(
                "probe.resource",
                "warn" if code == "invalid_target" else "fail",
                f"resource={below} answered {got.status} {code or ''}".rstrip()
                + " (revision 2: a URI below the resource names it; the official client sends the API URL)",
                R_PROBE_RESOURCE,
            )
            return
        token = json_object(got).get("access_token")
        aud = _unverified_claim(token, "aud") if isinstance(token, str) else None
        if aud is None:
            self.add("probe.resource", "pass", f"resource={below} accepted (an opaque access token)", R_PROBE_RESOURCE)
        elif aud == resource or (isinstance(aud, list) and resource in aud):
            self.add("probe.resource", "pass", f"resource={below} accepted; aud is {resource}", R_PROBE_RESOURCE)
        else:
            self.add(
                "probe.resource",
                "fail",
                f"resource={below} gave a token with aud {short(aud)} (revision 2: the resource, {resource})",
                R_PROBE_RESOURCE,
            )

    def probe_invalid_grant(self) -> None:
        """One assertion that is no JWT at all: an RFC 6749 sec 5.2 error (and an error body to check)."""
        assert self.as_meta is not None
        url = http_url(self.as_meta.doc.get("token_endpoint"))
        form = {"grant_type": JWT_BEARER, "assertion": PROBE_BOGUS_ASSERTION}
        got = self.http.request("POST", url, data=form, headers={"Accept": "application/json"})
        self.saw(_label("POST", url), got)
        code = _error_code(got)
        if got.status == 200:
            self.add("probe.invalid_grant", "fail", "an assertion that is not a JWT got a 200", R_PROBE_INVALID)
        elif got.status == 400 and code == "invalid_grant":
            self.add("probe.invalid_grant", "pass", "a bogus assertion: 400 invalid_grant", R_PROBE_INVALID)
        elif 400 <= got.status < 500 and code is not None:
            self.add(
                "probe.invalid_grant",
                "warn",
                f"a bogus assertion: {got.status} {code} (RFC 7523 sec 3.1 asks for 400 invalid_grant)",
                R_PROBE_INVALID,
            )
        else:
            self.add(
                "probe.invalid_grant",
                "fail",
                f"a bogus assertion: {got.status} {code or 'without a JSON error'}",
                R_PROBE_INVALID,
            )

    def claim_post(self, url: str, body: dict[str, Any]) -> tuple[Fetched, dict[str, Any] | None]:
        """POST a JSON body to a claim endpoint: the response and its JSON object (None if it has none).
        An error response is recorded for errors.*."""
        got = self.http.request("POST", url, json=body, headers={"Accept": "application/json"})
        self.saw(_label("POST", url), got)
        try:
            return got, json_object(got)
        except Problem:
            return got, None

    def probe_claim(self, claim: _ProbeClaim) -> bool:
        """Revision 2's attempts: two live at once (the second with the flat `login_hint` alias), the
        status still `pending`, and one past an advertised `max_live_attempts` refused with
        `too_many_attempts`. True when attempts could be started (so the revoked claim is worth checking)."""
        if claim.skip:
            self.report.notes.append(f"claim attempts not probed: {claim.skip}")
            return False
        cap = self.max_live_attempts

        def start(kind: str) -> tuple[Fetched, dict[str, Any] | None]:
            return self.claim_post(claim.url, {"type": kind, "claim_token": claim.token, "login_hint": PROBE_EMAIL})

        got, body = start("service_auth")
        if got.status != 200:
            code = _error_code(got)
            disabled = ("auth_method_disabled", "service_auth_registration_disabled", "service_auth_not_enabled")
            self.add(
                "probe.claim_attempts",
                "warn" if code in disabled else "fail",
                f"starting a claim attempt answered {got.status} {code or ''}".rstrip()
                + (": claims are off, nothing more probed" if code in disabled else ""),
                R_PROBE_CLAIM,
            )
            return False
        problem = _attempt_problem(body)
        if problem:
            self.add("probe.claim_attempts", "fail", f"the first attempt: {problem}", R_PROBE_CLAIM)
            return True
        links = [_attempt_link(body)]
        if cap == 1:
            self.add("probe.claim_attempts", "pass", "one attempt started (max_live_attempts is 1)", R_PROBE_CLAIM)
            self.report.notes.append("max_live_attempts is 1: a second live attempt and the alias were not probed")
        else:
            got, body = start("login_hint")
            alias: tuple[Status, str]
            if got.status == 200 and not _attempt_problem(body):
                alias = ("pass", 'claim start accepts the flat dialect\'s {"type":"login_hint"} as service_auth')
                links.append(_attempt_link(body))
            else:
                alias = (
                    "warn" if got.status in (400, 422) else "fail",
                    f'{{"type":"login_hint"}} answered {got.status} {_error_code(got) or ""}'.rstrip()
                    + " (revision 2 takes it as an alias of service_auth; agents that read the flat AUTH.md send it)",
                )
                got, body = start("service_auth")
                if got.status == 200 and not _attempt_problem(body):
                    links.append(_attempt_link(body))
            if len(links) < 2:
                code = _error_code(got)
                self.add(
                    "probe.claim_attempts",
                    "warn" if code == "too_many_attempts" else "fail",
                    f"a second attempt answered {got.status} {code or ''}".rstrip()
                    + " (revision 2: several attempts may be live at once)",
                    R_PROBE_CLAIM,
                )
            else:
                self.check_two_attempts(claim, links)
            self.add("probe.claim_alias", alias[0], alias[1], R_PROBE_CLAIM)
            if len(links) < 2:
                return True
        if cap is None:
            self.report.notes.append("no claim.max_live_attempts advertised: the attempt cap was not probed")
        elif cap > MAX_PROBED_ATTEMPTS:
            self.report.notes.append(f"claim.max_live_attempts is {cap}: too many attempts to probe the cap")
        else:
            self.probe_attempt_cap(cap, len(links), start)
        return True

    def check_two_attempts(self, claim: _ProbeClaim, links: list[str]) -> None:
        findings: list[tuple[Status, str]] = []
        if links[0] == links[1]:
            findings.append(("warn", "both attempts have the same verification_uri (each call mints an attempt)"))
        got, body = self.claim_post(claim.status_url, {"claim_token": claim.token})
        if got.status == 404:
            said = "no status endpoint (*ext*)"
        elif got.status != 200 or body is None:
            findings.append(("fail", f"the claim status answered {got.status} {_error_code(got) or ''}".rstrip()))
            said = ""
        elif body.get("status") != "pending":
            findings.append(("fail", f"the claim status is {short(body.get('status'))} (expected pending)"))
            said = ""
        else:
            said = "status pending"
        if findings:
            self.add(
                "probe.claim_attempts", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_PROBE_CLAIM
            )
        else:
            self.add("probe.claim_attempts", "pass", f"two attempts started on one claim; {said}", R_PROBE_CLAIM)

    def probe_attempt_cap(
        self, cap: int, live: int, start: Callable[[str], tuple[Fetched, dict[str, Any] | None]]
    ) -> None:
        while live < cap:
            got, body = start("service_auth")
            if got.status != 200 or _attempt_problem(body):
                self.add(
                    "probe.claim_cap",
                    "fail",
                    f"attempt {live + 1} of {cap} answered {got.status} {_error_code(got) or ''}".rstrip(),
                    R_PROBE_CLAIM,
                )
                return
            live += 1
        got, _ = start("service_auth")
        code = _error_code(got)
        if got.status == 429 and code == "too_many_attempts":
            self.add(
                "probe.claim_cap",
                "pass",
                f"attempt {cap + 1} past the cap of {cap}: 429 too_many_attempts",
                R_PROBE_CLAIM,
            )
        elif got.status == 200:
            self.add(
                "probe.claim_cap",
                "warn",
                f"attempt {cap + 1} was started although max_live_attempts is {cap} (expected 429 too_many_attempts)",
                R_PROBE_CLAIM,
            )
        else:
            self.add(
                "probe.claim_cap",
                "fail",
                f"attempt {cap + 1} past the cap answered {got.status} {code or ''} (expected 429 too_many_attempts)",
                R_PROBE_CLAIM,
            )

    def probe_revoked_claim(self, claim: _ProbeClaim) -> None:
        """After the revocation the claim is over: status `revoked` and a new attempt 410 `claim_revoked`;
        or, when the unclaimed temporary account went with its revocation (nothing left to remember it
        by), status `expired` and 410 `claim_expired` (spec/protocol.md Deny versus revoke)."""
        findings: list[tuple[Status, str]] = []
        forms: set[str] = set()  # "revoked" or "deleted", as each answer reads
        got, body = self.claim_post(claim.status_url, {"claim_token": claim.token})
        said: list[str] = []
        if got.status == 200 and body is not None:
            status = body.get("status")
            said.append(f"status {short(status)}")
            if status in ("revoked", "expired"):
                forms.add("revoked" if status == "revoked" else "deleted")
            elif status in ("pending", "confirmed", "claimed"):
                findings.append(("fail", f"the claim status is {short(status)} after the revocation"))
            else:
                findings.append(("warn", f"the claim status is {short(status)} (revision 2: revoked)"))
        elif got.status != 404:
            findings.append(("warn", f"the claim status answered {got.status} {_error_code(got) or ''}".rstrip()))
        got, _ = self.claim_post(
            claim.url, {"type": "service_auth", "claim_token": claim.token, "login_hint": PROBE_EMAIL}
        )
        code = _error_code(got)
        said.append(f"a new attempt {got.status} {code or ''}".rstrip())
        if got.status == 200:
            findings.append(("fail", "a claim attempt was started for the revoked registration"))
        elif got.status == 410 and code in ("claim_revoked", "claim_expired"):
            forms.add("revoked" if code == "claim_revoked" else "deleted")
        else:
            findings.append(
                ("warn", f"a new attempt answered {got.status} {code or ''} (revision 2: 410 claim_revoked)")
            )
        if len(forms) > 1:
            findings.append(
                (
                    "warn",
                    f"the answers disagree: {', '.join(said)} (revision 2 pairs status revoked with 410 "
                    "claim_revoked, or for a deleted account expired with claim_expired)",
                )
            )
        if findings:
            self.add(
                "probe.claim_revoked", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_PROBE_REVOKED
            )
        elif forms == {"deleted"}:
            self.add(
                "probe.claim_revoked",
                "pass",
                f"the unclaimed account went with its revocation: {', '.join(said)}",
                R_PROBE_REVOKED,
            )
        else:
            self.add("probe.claim_revoked", "pass", f"after the revocation: {', '.join(said)}", R_PROBE_REVOKED)

    def probe_cleanup(self, assertion: str) -> bool:
        """Revoke the throwaway registration (an unclaimed account's assertion revoked: account deleted)."""
        assert self.as_meta is not None
        endpoint = self.as_meta.doc.get("revocation_endpoint")
        if endpoint is None:
            self.add(
                "probe.cleanup", "warn", "no revocation_endpoint: the probe account stays until it expires", R_REVOKE
            )
            return False
        try:
            got = self.http.request("POST", http_url(endpoint), data={"token": assertion})
        except Problem as exc:
            self.add("probe.cleanup", "warn", f"could not revoke the probe registration: {exc}", R_REVOKE)
            return False
        if got.status == 200:
            self.add("probe.cleanup", "pass", "the probe registration was revoked (200)", R_REVOKE)
            return True
        self.saw(_label("POST", endpoint), got)
        self.add("probe.cleanup", "warn", f"revoking the probe registration answered {got.status}", R_REVOKE)
        return False

    # -- error bodies (everything the doctor met) ---------------------------------------------------------

    def check_errors(self) -> None:
        seen = list(self.seen_errors)
        known = {id(e.fetched) for e in seen}
        seen += [SeenError(label, got, True) for label, got in self.http.throttled if id(got) not in known]
        if not seen:
            self.report.notes.append(
                "no error response met: error bodies not checked (start from an API URL, or add --probe)"
            )
            return
        grouped: dict[tuple[Status, str], list[str]] = {}
        for e in seen:
            if finding := _error_body_finding(e):
                grouped.setdefault(finding, []).append(_seen_name(e))
        if grouped:
            message = "; ".join(
                f"{problem}: {', '.join(dict.fromkeys(where))}" for (_, problem), where in grouped.items()
            )
            self.add("errors.body", worst(s for s, _ in grouped), message, R_ERRORS)
        else:
            self.add(
                "errors.body",
                "pass",
                f"{len(seen)} error response(s), each with error, error_description and message",
                R_ERRORS,
            )

        codes = list(dict.fromkeys(c for e in seen if (c := _error_code(e.fetched))))
        old = [c for c in codes if c in REVISION_1_CODES]
        if old:
            renamed = ", ".join(f"{c} (revision 2: {REVISION_1_CODES[c]})" for c in old)
            self.add("errors.codes", "warn", f"revision 1 error codes: {renamed}", R_ERROR_NAMES)
        elif codes:
            self.add("errors.codes", "pass", f"no revision 1 code name among {', '.join(codes)}", R_ERROR_NAMES)

        throttled = [e for e in seen if e.fetched.status == 429 and _error_code(e.fetched) != "too_many_attempts"]
        if throttled:
            findings = [f for e in throttled for f in _retry_after_findings(e)]
            if findings:
                self.add(
                    "errors.retry_after", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_RETRY
                )
            else:
                self.add(
                    "errors.retry_after",
                    "pass",
                    f"{len(throttled)} 429(s), each with Retry-After and the same numeric retry_after",
                    R_RETRY,
                )


# ---------------------------------------------------------------------------------------------------
# Small pure helpers of the checks
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ProbeClaim:
    """Where the probe's claim attempts go: the registration's claim token, its claim URL and status URL;
    ``skip`` says why no attempt is started."""

    token: str
    url: str
    status_url: str
    skip: str = ""

    @classmethod
    def of(cls, reg: dict[str, Any], block: dict[str, Any], issuer: str) -> _ProbeClaim | None:
        claim = reg.get("claim")
        token = claim.get("token") if isinstance(claim, dict) else None
        if not isinstance(token, str) or not token:
            return None
        assert isinstance(claim, dict)
        try:
            url = http_url(claim.get("url") if isinstance(claim.get("url"), str) else block.get("claim_endpoint"))
        except Problem:
            return None
        found = block.get("claim")
        ext: dict[str, Any] = found if isinstance(found, dict) else {}
        status_url = url.rstrip("/") + "/status"
        if isinstance(ext.get("status_endpoint"), str):
            with contextlib.suppress(Problem):
                status_url = http_url(ext["status_endpoint"])
        methods = ext.get("methods")
        skip = ""
        if ext.get("offered") is False:
            skip = "agent_auth.claim.offered is false"
        elif isinstance(methods, list) and "service_auth" not in methods:
            skip = "agent_auth.claim.methods lacks service_auth"
        elif origin(url) != origin(issuer) or origin(status_url) != origin(issuer):
            skip = f"the claim endpoints are not on the issuer's origin {origin(issuer)}"
        return cls(token, url, status_url, skip)


def _attempt_problem(body: dict[str, Any] | None) -> str:
    """What is wrong with a claim start's 200 body ('' when it has what the official client reads)."""
    if body is None:
        return "the body is not a JSON object"
    attempt = body.get("attempt")
    if not isinstance(attempt, dict):
        return "no attempt object (the official client throws)"
    try:
        http_url(attempt.get("verification_uri"))
    except Problem as exc:
        return f"attempt.verification_uri: {exc}"
    problem = _timestamp_problem("attempt.expires_at", attempt.get("expires_at"))
    return problem[1] if problem and problem[0] == "fail" else ""


def _attempt_link(body: dict[str, Any] | None) -> str:
    assert body is not None
    return str(body["attempt"]["verification_uri"])


def _error_body_finding(seen: SeenError) -> tuple[Status, str] | None:
    """spec/protocol.md Errors, revision 2: `error`, `error_description` and `message` (the same text).
    (status, what is wrong) or None when the body has all three."""
    got = seen.fetched
    try:
        body = json.loads(got.body)
    except (ValueError, RecursionError):
        body = None
    not_protocol: Status = "fail" if seen.strict else "warn"
    if not isinstance(body, dict):
        return not_protocol, "not a JSON error body"
    code = body.get("error")
    if not isinstance(code, str) or not code:
        return not_protocol, "no error code in the body"
    message, description = body.get("message"), body.get("error_description")
    wrong = [
        n
        for n, v in (("message", message), ("error_description", description))
        if v is not None and not isinstance(v, str)
    ]
    if wrong:
        return "fail", f"{' and '.join(wrong)} not a string"
    if not message and not description:
        return "fail", "neither message nor error_description (agents show one of them)"
    if not message:
        return "warn", "error_description but no message (revision 2: both, the same text)"
    if not description:
        return "warn", "message but no error_description (RFC 6749 sec 5.2 clients read it)"
    return None


def _seen_name(seen: SeenError) -> str:
    return f"{seen.label} {seen.fetched.status} {_error_code(seen.fetched) or ''}".rstrip()


def _retry_after_seconds(value: str) -> float | None:
    """Retry-After as seconds: delay-seconds or an HTTP-date (RFC 9110 sec 10.2.3); None if neither."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _retry_after_findings(seen: SeenError) -> Iterator[tuple[Status, str]]:
    """A 429: `Retry-After` and, revision 2, the same number of seconds in the body's `retry_after`."""
    got = seen.fetched
    where = f"{seen.label} 429 {_error_code(got) or ''}".rstrip()
    header = got.headers.get("retry-after")
    from_header = _retry_after_seconds(header) if header is not None else None
    if header is not None and from_header is None:
        yield "fail", f"{where}: Retry-After {short(header)} is neither seconds nor an HTTP date"
        return
    try:
        body = json.loads(got.body)
    except (ValueError, RecursionError):
        body = None
    in_body = body.get("retry_after") if isinstance(body, dict) else None
    if in_body is not None and (isinstance(in_body, bool) or not isinstance(in_body, int | float) or in_body < 0):
        yield "fail", f"{where}: retry_after {short(in_body)} is not a number of seconds"
        return
    if header is None and in_body is None:
        yield "fail", f"{where}: neither Retry-After nor retry_after says when to retry"
    elif header is None:
        yield "warn", f"{where}: retry_after but no Retry-After header (RFC 6585 clients read the header)"
    elif in_body is None:
        yield "warn", f"{where}: Retry-After but no numeric retry_after in the body (revision 2)"
    elif from_header is not None and abs(from_header - float(in_body)) > 1.0:
        yield "fail", f"{where}: retry_after {in_body} disagrees with Retry-After {header}"


def _unverified_claim(token: str, name: str) -> Any:
    """A claim of a compact JWS read without verification (None when the token is not a JWT)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    return payload.get(name) if isinstance(payload, dict) else None


def _covers(resource: str, url: str) -> bool:
    """True when ``url`` is the resource or below it (path-segment prefix)."""
    return url == resource or url.startswith(resource.rstrip("/") + "/") or url.startswith(resource + "?")


def _endpoint_urls(meta: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, value) of the URL-valued members: top-level `*_endpoint`/`*_uri`/service_documentation and
    every `*_endpoint`/`*_uri`/skill inside agent_auth (at any depth)."""
    for key, value in meta.items():
        if key.endswith(("_endpoint", "_uri")) or key == "service_documentation":
            yield key, value

    def walk(prefix: str, node: Any, depth: int) -> Iterator[tuple[str, Any]]:
        if not isinstance(node, dict) or depth > 4:
            return
        for key, value in node.items():
            name = f"{prefix}.{key}"
            if isinstance(key, str) and (key.endswith(("_endpoint", "_uri")) or key == "skill"):
                yield name, value
            else:
                yield from walk(name, value, depth + 1)

    yield from walk("agent_auth", meta.get("agent_auth"), 0)


def _key_findings(label: str, key: dict[str, Any]) -> Iterator[tuple[Status, str]]:
    kty = key.get("kty")
    if not isinstance(kty, str):
        yield "fail", f"{label} has no kty"
        return
    if kty == "oct":
        yield "fail", f"{label} is a symmetric oct key (a shared secret has no place in a public JWKS)"
        return
    if kty not in KEY_MEMBERS:
        yield "warn", f"{label} has an unusual kty {short(kty)}"
    else:
        missing = [m for m in KEY_MEMBERS[kty] if not isinstance(key.get(m), str)]
        if missing:
            yield "fail", f"{label} ({kty}) lacks {', '.join(missing)}"
    if not isinstance(key.get("kid"), str) or not key.get("kid"):
        yield "warn", f"{label} has no kid (verifiers cannot pick it during a rotation)"
    use = key.get("use")
    if use is not None and use != "sig":
        yield "warn", f"{label} use is {short(use)}, not sig"
    alg = key.get("alg")
    if alg is not None:
        if not isinstance(alg, str) or alg.lower() == "none" or alg.upper().startswith("HS"):
            yield "fail", f"{label} alg {short(alg)} is not an asymmetric signature algorithm"
        elif alg not in KNOWN_ALGS:
            yield "warn", f"{label} has an unknown alg {short(alg)}"


_SECRET_MEMBER = re.compile(r"secret|password|passwd|private|credential|api_?key", re.IGNORECASE)


def _secrets_in(node: Any, path: str, depth: int = 0) -> Iterator[str]:
    """Members of a public document that look like a secret: a name like client_secret or private_key,
    a JWK's private or symmetric member (d, k, ...) or a PEM private key."""
    if depth > 4:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{path}.{key}"
            if isinstance(key, str) and (_SECRET_MEMBER.search(key) or key in PRIVATE_MEMBERS):
                yield name
            else:
                yield from _secrets_in(value, name, depth + 1)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _secrets_in(value, f"{path}[{i}]", depth + 1)
    elif isinstance(node, str) and "PRIVATE KEY" in node:
        yield path


def _trust_entry_findings(label: str, entry: Any) -> Iterator[tuple[Status, str]]:
    if not isinstance(entry, dict):
        yield "fail", f"{label} is not an object {{issuer, name}}: {short(entry)}"
        return
    try:
        issuer = http_url(entry.get("issuer"))
    except Problem as exc:
        yield "fail", f"{label}.issuer: {exc}"
    else:
        parts = urlsplit(issuer)
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            yield "fail", f"{label}.issuer {issuer} is plain http on a non-loopback host"
        if parts.query or parts.fragment:
            yield "fail", f"{label}.issuer {issuer} has a query or fragment (RFC 8414 sec 2: an issuer has none)"
    name = entry.get("name")
    if not isinstance(name, str):
        yield "fail", f"{label}.name must be a string: {short(name)}"
    elif not name.strip():
        yield "warn", f"{label}.name is empty (agents show it to their user)"
    leaked = list(_secrets_in(entry, label))
    if leaked:
        yield "fail", f"{label} publishes what looks like a secret: {', '.join(leaked)}"


def _key_diff(example: Any, live: dict[str, Any]) -> str:
    """Differences of the top-level and `agent_auth` key sets ('' when none)."""
    if not isinstance(example, dict):
        return "the example is not an object"
    parts: list[str] = []
    pairs: list[tuple[str, Any, Any]] = [("", example, live)]
    if isinstance(example.get("agent_auth"), dict) and isinstance(live.get("agent_auth"), dict):
        pairs.append(("agent_auth.", example["agent_auth"], live["agent_auth"]))
    for prefix, ex, lv in pairs:
        lacks = sorted(set(lv) - set(ex))
        extra = sorted(set(ex) - set(lv))
        if lacks:
            parts.append(f"lacks {', '.join(prefix + k for k in lacks)}")
        if extra:
            parts.append(f"has extra {', '.join(prefix + k for k in extra)}")
    return "; ".join(parts)


def _error_code(got: Fetched) -> str | None:
    try:
        body = json.loads(got.body)
    except (ValueError, RecursionError):
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _timestamp_problem(name: str, value: Any) -> tuple[Status, str] | None:
    if not isinstance(value, str):
        return "fail", f"{name} missing or not a string"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return "fail", f"{name} {short(value)} is not RFC 3339"
    if parsed.tzinfo is None:
        return "fail", f"{name} {short(value)} has no offset (JavaScript reads it as local time)"
    if not value.endswith("Z"):
        return "warn", f"{name} {short(value)} is not UTC with a Z"
    return None


def _registration_problems(reg: dict[str, Any]) -> Iterator[tuple[Status, str]]:
    """The anonymous registration's nested shape (spec/protocol.md Registration; what the client reads)."""
    if not isinstance(reg.get("id"), str):
        yield "fail", "no id"
    if reg.get("type") != "anonymous":
        yield "fail", f"type is {short(reg.get('type'))}, not anonymous"
    for block, members in (("identity", ("assertion", "expires_at")), ("claim", ("token", "expires_at", "url"))):
        node = reg.get(block)
        if not isinstance(node, dict):
            yield "fail", f"no {block} object (flat shape?)"
            continue
        for member in members:
            name = f"{block}.{member}"
            if member == "expires_at":
                problem = _timestamp_problem(name, node.get(member))
                if problem:
                    yield problem
            elif not isinstance(node.get(member), str) or not node.get(member):
                yield "fail", f"no {name}"
    scopes = reg.get("scopes")
    if not isinstance(scopes, dict) or not all(isinstance(scopes.get(k), list) for k in ("pre_claim", "post_claim")):
        yield "warn", f"scopes is not {{pre_claim: [...], post_claim: [...]}}: {short(scopes)}"


def _no_store(got: Fetched, what: str) -> tuple[Status, str]:
    cache_control = got.headers.get("cache-control", "")
    if "no-store" not in cache_control.lower():
        return "fail", f"the {what} carries credentials without Cache-Control: no-store"
    if "no-cache" not in got.headers.get("pragma", "").lower():
        return "warn", f"the {what} has Cache-Control: no-store but no Pragma: no-cache"
    return "pass", f"the {what} sends Cache-Control: no-store and Pragma: no-cache"


# ---------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------

LABEL: dict[Status, str] = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}
MODES = {
    "api": "an API URL (followed its 401 to the resource metadata, then to the issuer)",
    "issuer": "the issuer",
    "resource-metadata": "a protected-resource metadata URL",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def ascii_safe(text: str) -> str:
    """No control characters (a hostile server's values reach the terminal) and ASCII only."""
    return _UNSAFE.sub("?", text).encode("ascii", "backslashreplace").decode("ascii")


def render_table(report: Report) -> str:
    header = ["STATUS", "CHECK", "REFERENCE", "RESULT"]
    rows = [header] + [[LABEL[c.status], c.id, c.reference or "-", c.message] for c in report.ordered()]
    rows = [[ascii_safe(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"authmd doctor {ascii_safe(report.url)}",
        f"started from: {MODES.get(report.mode, report.mode)}",
        f"issuer: {ascii_safe(report.issuer or '(not found)')}",
        "",
    ]
    lines += ["  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3]]).rstrip() for row in rows]
    if report.notes:
        lines.append("")
        lines += [f"note: {ascii_safe(n)}" for n in report.notes]
    s = report.summary()
    verdict = "FAILED" if s["fail"] else "OK"
    lines += ["", f"summary: {s['pass']} pass, {s['warn']} warn, {s['fail']} fail -> {verdict}"]
    return "\n".join(lines)


def _verify(ca_file: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def run(args: argparse.Namespace) -> int:
    try:
        url = http_url(args.url)
    except Problem as exc:
        print(f"authmd doctor: {exc} (give an http:// or https:// URL)", file=sys.stderr)
        return 2
    if not args.timeout > 0:
        print("authmd doctor: --timeout must be positive", file=sys.stderr)
        return 2
    try:
        verify = _verify(args.ca_file)
    except (OSError, ssl.SSLError) as exc:
        print(f"authmd doctor: --ca-file: {exc}", file=sys.stderr)
        return 2
    client = httpx.Client(
        timeout=args.timeout,
        follow_redirects=False,
        trust_env=False,
        verify=verify,
        headers={"User-Agent": USER_AGENT},
    )
    with client:
        doctor = Doctor(Http(client), url, probe=args.probe)
        try:
            report = doctor.run()
        except Unreachable as exc:
            print(f"authmd doctor: cannot reach {url}: {exc}", file=sys.stderr)
            if args.json:
                unreachable = {**Report(url).as_dict(), "mode": None, "error": str(exc)}
                print(json.dumps(unreachable, indent=2))
            return 3
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(render_table(report))
    return 1 if report.summary()["fail"] else 0
