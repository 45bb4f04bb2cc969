"""The doctor's HTTP: every response capped at MAX_BYTES and read whole, no redirects followed, and
nothing raised but Problem (a check fails) or Unreachable (no HTTP answer at all); plus the URL and
header readings every check group shares."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.agent.client import transport_reason
from app.protocol import origin as _origin

MAX_BYTES = 1_000_000


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
    """The origin, lower-cased (compared, never fetched)."""
    return _origin(url).lower()


def well_known(url: str, suffix: str) -> str:
    """RFC 8414 sec 3.1 / RFC 9728 sec 3.1: the suffix goes between host and path (trailing / dropped)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{suffix}{path}{query}"


def label(method: str, url: str) -> str:
    """How a request is named in messages: the method and the path (the origin is the issuer's)."""
    return f"{method} {urlsplit(url).path or '/'}"


def describe(exc: Exception) -> str:
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
            raise Problem(f"{method} {url}: {describe(exc)}") from None
        if got.status == 429:
            self.throttled.append((label(method, url), got))
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


def error_code(got: Fetched) -> str | None:
    try:
        body = json.loads(got.body)
    except (ValueError, RecursionError):
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


# WWW-Authenticate (RFC 9110 sec 11.6.1)
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
