"""Client ID Metadata Documents: a URL ``client_id`` names a JSON document that describes the client.

draft-ietf-oauth-client-id-metadata-document (section numbers below are those of revision -02; -00/-01
number the same rules differently). The URL comes from a token, so fetching it is a request an outsider
chose; everything here is about making that request safe (§8.6 Server-Side Request Forgery, §8.7 Maximum
Response Size):

1. The URL must be a plain RFC 3986 URI with scheme ``https`` (``http`` only when the operator allows it),
   a host, a path, no userinfo, no fragment, no dot segments (§3 Client Identifier URL).
2. The host is resolved once; if ANY address it resolves to is not public (private, loopback, link-local,
   multicast, reserved, unspecified, or such an address embedded in IPv6), the fetch is refused unless the
   operator allows private targets.
3. The request goes to the address we checked, not to the name: the URL's host is replaced by the IP, the
   ``Host`` header carries the original authority, and for https the ``sni_hostname`` request extension
   makes TLS send and verify the original name. A second DNS answer (rebinding) is never asked for.
4. No redirects (§5: the document is served with 200 at the URL itself), a total time limit, a body size
   limit enforced while streaming, a JSON ``Content-Type``, a JSON object whose ``client_id`` is the URL by
   simple string comparison (§4, RFC 3986 §6.2.1), and no shared-secret client authentication (§4).

Every failure is ``AuthError("invalid_client_id", ...)`` naming the reason; descriptions never echo
userinfo, resolved addresses or response bodies.

The ``httpx.AsyncClient`` passed in should be a plain one: no proxy (``trust_env=False``; a proxy would
re-resolve the name and, for https, verify TLS against the IP), no default credentials or cookies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from app.clock import Clock
from app.errors import AuthError
from app.outbound.http import (
    BadMediaType,
    BadStatus,
    BodyRefused,
    Fetched,
    NotJson,
    fetch_json,
    freshness,
    is_json_media_type,
)

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_CLIENT_ID_LENGTH = 2048
# RFC 3986 §2: the characters a URI may contain (unreserved, reserved, and "%" for percent-encoding).
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 6052 §2.1: the NAT64 well-known prefix embeds an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# §4: a metadata document must not describe a client that authenticates with a shared secret.
_SECRET_MEMBERS = ("client_secret", "client_secret_expires_at")
_SHARED_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})

_HINT = "Use an https client_id URL that serves its client metadata document as JSON with status 200."


class _Refused(Exception):
    """A fetch failure whose message is safe to show (it never contains secrets or addresses)."""


def _refuse(reason: str) -> AuthError:
    return AuthError("invalid_client_id", f"The client_id metadata document was refused: {reason}.", _HINT)


def is_public_address(address: IPAddress) -> bool:
    """True if ``address`` is a public unicast address that an outsider may make us connect to.

    Refuses private, loopback, link-local, multicast, reserved, unspecified, shared (RFC 6598) and
    site-local addresses, and IPv6 forms that embed a refused IPv4 address: IPv4-mapped (RFC 4291 §2.5.5.2,
    judged as the IPv4 address it reaches), 6to4 (RFC 3056), Teredo (RFC 4380) and NAT64 (RFC 6052).
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        embedded: list[ipaddress.IPv4Address | None] = [address.sixtofour, *(address.teredo or ())]
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(inner is not None and not is_public_address(inner) for inner in embedded):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The operator's trust policy on client_id hosts (``cimd_allow_domains``, ``cimd_deny_domains``). A
    name entry covers itself and every name under it at a label boundary (``example.com``: also
    ``app.example.com``, never ``badexample.com``); an IP literal covers only itself. A denied host is
    refused even when an allowed entry covers it; with an allow list, every other host is refused."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def permits(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if any(_covers(entry, host) for entry in self.deny):
            return False
        return not self.allow or any(_covers(entry, host) for entry in self.allow)


def _covers(entry: str, host: str) -> bool:
    entry = entry.lower().rstrip(".")
    if host == entry:
        return True
    try:
        ipaddress.ip_address(entry)
        return False
    except ValueError:
        return host.endswith("." + entry)


@dataclass(frozen=True, slots=True)
class _Target:
    url: httpx.URL
    host: str  # ASCII host name or IP literal, no brackets: what DNS resolves and TLS verifies
    port: int
    authority: str  # the Host header: host[:port] exactly as the client_id spells it


def _parse_client_id(client_id: str, *, allow_http: bool) -> _Target:
    """§3 Client Identifier URL, on the raw string (the document must match it character for character)."""
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise _Refused(f"the client_id is longer than {MAX_CLIENT_ID_LENGTH} characters")
    if not _URI_CHARS.fullmatch(client_id) or _BAD_PERCENT.search(client_id):
        raise _Refused("the client_id is not a URI (RFC 3986 §2)")
    if "#" in client_id:
        raise _Refused("the client_id URL has a fragment (RFC 3986 §3.5), which §3 forbids")
    try:
        parts = urlsplit(client_id)
        port = parts.port
    except ValueError:
        raise _Refused("the client_id is not a valid URL (RFC 3986 §3)") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http):
        raise _Refused("the client_id URL must use https")
    if "@" in parts.netloc:
        raise _Refused("the client_id URL has userinfo (RFC 3986 §3.2.1), which §3 forbids")
    host = parts.hostname
    if not host:
        raise _Refused("the client_id URL has no host (RFC 3986 §3.2.2)")
    if not parts.path:
        raise _Refused("the client_id URL has no path component, which §3 requires")
    # §3: no single-dot or double-dot path segments (RFC 3986 §3.3), percent-encoded or not (§6.2.2.2).
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        raise _Refused("the client_id URL has a dot segment in its path, which §3 forbids")
    try:
        url = httpx.URL(client_id)
    except httpx.InvalidURL:
        raise _Refused("the client_id is not a valid URL") from None
    return _Target(
        url=url,
        host=host,
        port=port if port is not None else (443 if scheme == "https" else 80),
        authority=parts.netloc,
    )


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in resolver order, without duplicates."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _Refused("the client_id URL's host does not resolve") from None
    addresses: list[IPAddress] = []
    for info in infos:
        try:
            address = ipaddress.ip_address(info[4][0])
        except ValueError:
            continue
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _Refused("the client_id URL's host does not resolve")
    return addresses


async def fetch_client_metadata(
    http: httpx.AsyncClient,
    client_id: str,
    *,
    allow_http: bool,
    allow_private: bool,
    timeout: float = 5.0,
    max_bytes: int = 16384,
) -> tuple[dict[str, Any], httpx.Headers]:
    """Fetch and validate the client metadata document at the URL ``client_id``; the document and its
    response's headers (for how long it stays fresh).

    Raises ``AuthError("invalid_client_id")`` for every failure: a URL §3 forbids, a host that resolves to
    a non-public address (unless ``allow_private``), no answer within ``timeout`` seconds (resolution
    included), a status other than 200 (redirects are not followed), a non-JSON ``Content-Type``, a body
    over ``max_bytes``, or a document that is not a JSON object whose ``client_id`` is exactly ``client_id``.
    """
    try:
        target = _parse_client_id(client_id, allow_http=allow_http)
        async with asyncio.timeout(timeout):
            addresses = await _resolve(target.host, target.port)
            # §8.6: refuse if ANY answer is internal, so a name with one public and one internal address
            # cannot be used to reach the internal one on a retry.
            if not allow_private and not all(is_public_address(address) for address in addresses):
                raise _Refused("the client_id URL's host resolves to a private or reserved address")
            got = await _fetch_pinned(http, target, addresses, timeout=timeout, max_bytes=max_bytes)
    except _Refused as exc:
        raise _refuse(str(exc)) from None
    except TimeoutError:
        raise _refuse(f"no complete answer within {timeout:g}s") from None
    return _validate(got.document, client_id), got.headers


async def _fetch_pinned(
    http: httpx.AsyncClient, target: _Target, addresses: list[IPAddress], *, timeout: float, max_bytes: int
) -> Fetched:
    """GET the document from the checked addresses (first that accepts a connection), never re-resolving."""
    headers = {
        "Host": target.authority,
        # The pool is keyed by IP: never leave a connection (verified for this name) for another name.
        "Connection": "close",
    }
    # httpcore uses `sni_hostname` for both SNI and certificate name verification (ssl server_hostname).
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    for address in addresses:
        try:
            pinned = target.url.copy_with(host=str(address))
            return await fetch_json(
                http,
                pinned,
                max_bytes=max_bytes,
                timeout=timeout,
                headers=headers,
                extensions=extensions,
                media_type=is_json_media_type,
            )
        except (httpx.ConnectError, httpx.InvalidURL):
            continue  # refused, unreachable, failed TLS (or a scoped IPv6 URL httpx cannot form): next address
        except httpx.TimeoutException:
            raise _Refused(f"no complete answer within {timeout:g}s") from None
        except httpx.HTTPError:
            raise _Refused("the connection to the client_id URL's host failed") from None
        except BadStatus as exc:
            if 300 <= exc.status < 400:
                raise _Refused(
                    f"the client_id URL answered with a redirect ({exc.status}); redirects are not followed (§5)"
                ) from None
            raise _Refused(f"the client_id URL answered with HTTP status {exc.status}, not 200 (§5)") from None
        except BadMediaType:
            raise _Refused("the document's Content-Type is not JSON (§4)") from None
        except BodyRefused as exc:
            raise _Refused(f"the document is {exc} (§8.7)") from None
        except NotJson:
            raise _Refused("the document is not valid JSON") from None
    raise _Refused("could not connect to the client_id URL's host (connection or TLS verification failed)")


def _validate(document: object, client_id: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise _refuse("the document is not a JSON object (§4)")
    # §4: client_id MUST equal the URL, compared as simple strings (RFC 3986 §6.2.1); no normalisation.
    if document.get("client_id") != client_id:
        raise _refuse("the document's client_id is not exactly the URL it was fetched from (§4)")
    if any(member in document for member in _SECRET_MEMBERS):
        raise _refuse("the document carries a client secret, which §4 forbids")
    if document.get("token_endpoint_auth_method") in _SHARED_SECRET_METHODS:
        raise _refuse("the document names a shared-secret token_endpoint_auth_method, which §4 forbids")
    return document


# How long a document stays fresh when its response says nothing (RFC 9111 §4.2.2 lets a cache choose), and
# the most it is kept whatever the response says (``app.outbound.http.freshness`` reads the headers): a
# client that changes its redirect URIs, or whose document was taken over, is seen within the day.
DEFAULT_FRESHNESS = 300.0
MAX_FRESHNESS = 86_400.0


@dataclass(slots=True)
class _Entry:
    document: dict[str, Any]
    expires_at: float


class ClientMetadataCache:
    """Validated metadata documents, each kept as long as its response's cache headers allow
    (``freshness``; ``ttl`` seconds when they say nothing, a day at most), by the injected clock. A
    client_id whose host ``hosts`` refuses is refused before the cache and before any request.

    Failures are not cached (a client that fixes its document is seen at the next request); concurrent
    requests for one ``client_id`` share one fetch; at most ``max_entries`` documents are held (the
    soonest-expiring go first). The cache key includes the policy flags, so a document fetched under a
    looser policy is never served to a stricter one. ``get`` returns a copy the caller may change.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        clock: Clock,
        ttl: float = DEFAULT_FRESHNESS,
        *,
        timeout: float = 5.0,
        max_bytes: int = 16384,
        max_entries: int = 1024,
        hosts: HostPolicy = HostPolicy(),
    ) -> None:
        self._http = http
        self._hosts = hosts
        self._clock = clock
        self._ttl = ttl
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._entries: dict[tuple[str, bool, bool], _Entry] = {}
        self._inflight: dict[tuple[str, bool, bool], asyncio.Task[dict[str, Any]]] = {}

    async def get(self, client_id: str, *, allow_http: bool, allow_private: bool) -> dict[str, Any]:
        # The operator's host policy first, cached or not: no request ever goes to a host it refuses.
        try:
            host = urlsplit(client_id).hostname
        except ValueError:
            host = None  # not a URL: the fetch refuses it with the reason
        if host is not None and not self._hosts.permits(host):
            raise _refuse("the client_id URL's host is not one this server accepts client metadata from")
        key = (client_id, allow_http, allow_private)
        entry = self._entries.get(key)
        if entry is not None and self._clock.now() < entry.expires_at:
            return dict(entry.document)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(key))
            self._inflight[key] = task
            task.add_done_callback(_retrieve)
        try:
            document = await asyncio.shield(task)
        except AuthError as exc:
            # A fresh error per caller: one exception object re-raised in many tasks grows one traceback.
            raise AuthError(exc.code, exc.description, exc.hint) from None
        return dict(document)

    async def _fetch(self, key: tuple[str, bool, bool]) -> dict[str, Any]:
        client_id, allow_http, allow_private = key
        try:
            document, headers = await fetch_client_metadata(
                self._http,
                client_id,
                allow_http=allow_http,
                allow_private=allow_private,
                timeout=self._timeout,
                max_bytes=self._max_bytes,
            )
        finally:
            del self._inflight[key]
        lifetime = freshness(headers, default=self._ttl, ceiling=MAX_FRESHNESS)
        self._entries.pop(key, None)
        if lifetime > 0:
            while len(self._entries) >= self._max_entries:
                # The soonest to expire goes first (lifetimes differ, so insertion order is not expiry order).
                del self._entries[min(self._entries, key=lambda k: self._entries[k].expires_at)]
            self._entries[key] = _Entry(document, self._clock.now() + lifetime)
        return document


def _retrieve(task: asyncio.Task[dict[str, Any]]) -> None:
    # Mark the outcome retrieved even if every caller went away (no "exception was never retrieved").
    if not task.cancelled() and (exc := task.exception()) is not None and not isinstance(exc, AuthError):
        log.error("client metadata fetch crashed", exc_info=exc)
