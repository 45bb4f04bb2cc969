"""One way to ask another server for a JSON document (a provider's JWKS or discovery document, a client
metadata document, UserInfo, a token response): whatever the peer does, we read at most ``max_bytes``,
wait at most ``timeout`` seconds in all, follow no redirect and decompress nothing.

``fetch_json`` raises :class:`Unacceptable` for an answer it will not read (status, media type, body);
transport failures (``httpx.HTTPError``, ``httpx.InvalidURL``, ``OSError``) and the time limit
(``TimeoutError``) pass through untouched, so each caller words its own errors.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import certifi
import httpx
import msgspec


def tls_trust() -> ssl.SSLContext:
    """How outbound https is verified: certifi's CAs (httpx's own default) and OpenSSL's default verify
    paths, which are ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when the operator sets them (a private CA) and the
    system's store otherwise. httpx reads those variables itself only with ``trust_env=True``, which would
    also take proxies from the environment: our clients keep it off."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_default_verify_paths()
    return context


class Unacceptable(Exception):
    """An answer we will not read."""


class BadStatus(Unacceptable):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP status {status}")
        self.status = status


class BadMediaType(Unacceptable):
    def __init__(self, media_type: str) -> None:
        super().__init__(f"media type {media_type!r}")
        self.media_type = media_type  # lower-cased, without parameters


class BodyRefused(Unacceptable):
    """A body we will not read; the message completes "the <document> is …"."""


class NotJson(Unacceptable):
    """The body is not JSON (or nests deeper than the decoder goes)."""

    def __init__(self, status: int) -> None:
        super().__init__("not JSON")
        self.status = status


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    headers: httpx.Headers
    document: object  # decoded JSON: the caller checks its shape


def is_json_media_type(media_type: str) -> bool:
    """``application/json`` or a structured ``application/*+json`` (RFC 6839 §3.1)."""
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def fetch_json(
    http: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    max_bytes: int,
    timeout: float,
    method: str = "GET",
    content: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
    media_type: Callable[[str], bool] | None = None,
    any_status: bool = False,
) -> Fetched:
    """The decoded JSON body of ``method url``. Checked in this order, before the body is read: the status
    is 200 (unless ``any_status``: a token endpoint's errors are JSON too), then the media type passes
    ``media_type`` (when given); then the body is read within ``max_bytes`` and decoded."""
    sent = {"Accept": "application/json", "Accept-Encoding": "identity", **(headers or {})}
    # asyncio.timeout bounds the whole exchange; httpx's timeout bounds each network step.
    async with (
        asyncio.timeout(timeout),
        http.stream(
            method,
            url,
            content=content,
            headers=sent,
            extensions=extensions,
            timeout=timeout,
            follow_redirects=False,
        ) as response,
    ):
        if response.status_code != 200 and not any_status:
            raise BadStatus(response.status_code)
        if media_type is not None:
            found = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if not media_type(found):
                raise BadMediaType(found)
        body = await read_limited(response, max_bytes)
        try:
            document = msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError):  # msgspec raises RecursionError past its nesting limit
            raise NotJson(response.status_code) from None
        return Fetched(response.status_code, response.headers, document)


async def read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    """The body, refusing more than ``max_bytes``: checked on Content-Length, then while streaming. We ask
    for ``Accept-Encoding: identity``; a compressed body could expand far past the limit in one chunk."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BodyRefused(f"compressed (Content-Encoding {encoding!r}), which was not asked for")
    too_large = f"larger than {max_bytes} bytes"
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyRefused(too_large)
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise BodyRefused(too_large)
    return bytes(body)


_MAX_AGE = re.compile(r'^max-age="?(\d+)"?$')


def freshness(headers: httpx.Headers, *, default: float, ceiling: float, floor: float = 0.0) -> float:
    """Seconds a response may be served from a cache, from its headers (RFC 9111 §4.2), within [floor,
    ceiling]. ``no-store`` and ``no-cache`` (§5.2.2.4, §5.2.2.5): the floor. Else ``max-age`` (§5.2.2.1),
    else ``Expires`` less ``Date`` (§4.2.1), either less the ``Age`` the response already had (§4.2.3);
    a malformed ``max-age`` or ``Expires`` makes the response stale (§4.2.1, §5.3): the floor. A response
    that says nothing: ``default`` (a heuristic lifetime, §4.2.2)."""
    directives = [d.strip().lower() for line in headers.get_list("cache-control") for d in line.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return floor
    ages = [d for d in directives if d.startswith("max-age")]
    if ages:
        match = _MAX_AGE.match(ages[0].replace(" ", ""))
        lifetime = float(match.group(1)) if match else 0.0
    elif "expires" in headers:
        expires, date = _http_date(headers.get("expires")), _http_date(headers.get("date"))
        lifetime = expires - date if expires is not None and date is not None else 0.0
    else:
        lifetime = default
    age = headers.get("age", "").strip()
    if (ages or "expires" in headers) and age.isdigit():
        lifetime -= float(age)
    return max(floor, min(lifetime, ceiling))


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
