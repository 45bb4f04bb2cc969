"""Client ID Metadata Documents fetched from real local HTTP(S) servers: the good path, every refusal, the
SSRF guard (no request reaches a private target), TLS name verification on the pinned address, the cache,
and the address classifier."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.clock import ManualClock
from app.errors import AuthError
from app.outbound.cimd import MAX_FRESHNESS, ClientMetadataCache, HostPolicy, fetch_client_metadata, is_public_address
from app.outbound.http import freshness

pytestmark = pytest.mark.anyio

PATH = "/client.json"


# ---------------------------------------------------------------- a real client_id host


@dataclass
class Reply:
    status: int = 200
    content_type: str | None = "application/json"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True
    wait: threading.Event | None = None  # hold the answer until this is set
    drip: threading.Event | None = None  # send the body one byte per 0.1 s until this is set


@dataclass
class Host:
    """A client_id host: answers each path from `replies`; records every request it receives."""

    scheme: str = "http"
    port: int = 0
    replies: dict[str, Reply] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Host header)
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def hits(self) -> int:
        return len(self.requests)

    def url(self, path: str = PATH, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def serve(self, document: Any, path: str = PATH, **reply: Any) -> None:
        self.replies[path] = Reply(body=json.dumps(document).encode(), **reply)


def _handler(host: Host) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                host.requests.append((self.path, self.headers.get("Host")))
            reply = host.replies.get(self.path, Reply(status=404, body=b"{}"))
            if reply.wait is not None:
                reply.wait.wait(timeout=30)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                self.send_response(reply.status)
                if reply.content_type is not None:
                    self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.send_length:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if reply.drip is None:
                    self.wfile.write(reply.body)
                    return
                for byte in reply.body:  # each byte well within httpx's read timeout
                    if reply.drip.wait(0.1):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def running(host: Host, tls: ssl.SSLContext | None = None) -> Iterator[Host]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(host))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        host.scheme = "https"
    host.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield host
    finally:
        for reply in host.replies.values():  # release handlers still waiting (timeout test)
            for event in (reply.wait, reply.drip):
                if event is not None:
                    event.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def host() -> Iterator[Host]:
    with running(Host()) as h:
        yield h


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


async def refused(call: Any, *fragments: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        await call
    error = info.value
    assert error.code == "invalid_client_id", error.description
    assert error.status == 400
    for fragment in fragments:
        assert fragment in error.description
    return error


async def fetch(http: httpx.AsyncClient, client_id: str, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"allow_http": True, "allow_private": True} | kwargs
    document, _ = await fetch_client_metadata(http, client_id, **options)
    return document


# ---------------------------------------------------------------- the good path


async def test_a_good_document_is_returned(host: Host, http: httpx.AsyncClient) -> None:
    document = {"client_id": host.url(), "client_name": "Example Agent", "redirect_uris": ["https://a.example/cb"]}
    host.serve(document)
    assert await fetch(http, host.url()) == document
    assert host.requests == [(PATH, f"127.0.0.1:{host.port}")]


async def test_a_name_is_resolved_once_and_the_host_header_keeps_the_name(host: Host, http: httpx.AsyncClient) -> None:
    client_id = host.url(host="localhost")
    host.serve({"client_id": client_id}, content_type="application/json; charset=utf-8")
    assert (await fetch(http, client_id))["client_id"] == client_id
    # The request went to the checked IP (the URL the server saw has no name in it) with the name in Host.
    assert host.requests == [(PATH, f"localhost:{host.port}")]


async def test_query_string_is_kept(host: Host, http: httpx.AsyncClient) -> None:
    host.serve({"client_id": host.url("/client.json?v=2")}, path="/client.json?v=2")
    assert (await fetch(http, host.url("/client.json?v=2")))["client_id"].endswith("?v=2")


# ---------------------------------------------------------------- SSRF: private targets never reached


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
async def test_private_targets_are_refused_before_any_request(host: Host, http: httpx.AsyncClient, name: str) -> None:
    client_id = host.url(host=name)
    host.serve({"client_id": client_id})
    error = await refused(fetch(http, client_id, allow_private=False), "private or reserved address")
    assert "127.0.0.1" not in error.description, "resolved addresses are not echoed"
    assert host.hits == 0


async def test_ipv6_loopback_literal_is_refused(http: httpx.AsyncClient) -> None:
    await refused(fetch(http, "https://[::1]/client.json", allow_private=False), "private or reserved address")


async def test_unresolvable_host_is_refused(http: httpx.AsyncClient) -> None:
    await refused(fetch(http, "https://no-such-host.invalid/client.json"), "does not resolve")


# ---------------------------------------------------------------- URL rules (§3, RFC 3986)


async def test_http_needs_allow_http(host: Host, http: httpx.AsyncClient) -> None:
    host.serve({"client_id": host.url()})
    await refused(fetch(http, host.url(), allow_http=False), "https")
    assert host.hits == 0


@pytest.mark.parametrize(
    ("make_url", "fragment"),
    [
        (lambda h: f"http://user:hunter2@127.0.0.1:{h.port}{PATH}", "userinfo"),
        (lambda h: f"http://user@127.0.0.1:{h.port}{PATH}", "userinfo"),
        (lambda h: f"{h.url()}#frag", "fragment"),
        (lambda h: f"{h.url()}#", "fragment"),
        (lambda h: f"http://127.0.0.1:{h.port}", "no path"),
        (lambda h: f"http://127.0.0.1:{h.port}?x=1", "no path"),
        (lambda h: f"http://127.0.0.1:{h.port}/a/../client.json", "dot segment"),
        (lambda h: f"http://127.0.0.1:{h.port}/./client.json", "dot segment"),
        (lambda h: f"http://127.0.0.1:{h.port}/a/%2e%2E/client.json", "dot segment"),
        (lambda h: f"http:///{PATH}", "no host"),
        (lambda h: f"ftp://127.0.0.1:{h.port}{PATH}", "https"),
        (lambda h: f"http://127.0.0.1:{h.port}/client json", "not a URI"),
        (lambda h: f"http://127.0.0.1:{h.port}/caf\u00e9.json", "not a URI"),
        (lambda h: f"http://127.0.0.1:{h.port}/%zz", "not a URI"),
        (lambda h: f"http://127.0.0.1:99999{PATH}", "not a valid URL"),
        (lambda h: f"http://127.0.0.1:{h.port}/{'a' * 3000}", "longer than"),
    ],
    ids=[
        "userinfo-password",
        "userinfo-user",
        "fragment",
        "empty-fragment",
        "no-path",
        "query-no-path",
        "dot-dot",
        "dot",
        "encoded-dot-dot",
        "no-host",
        "scheme",
        "space",
        "non-ascii",
        "bad-percent",
        "bad-port",
        "too-long",
    ],
)
async def test_urls_the_draft_forbids_are_refused(
    host: Host, http: httpx.AsyncClient, make_url: Callable[[Host], str], fragment: str
) -> None:
    client_id = make_url(host)
    host.replies = {path: Reply(body=json.dumps({"client_id": client_id}).encode()) for path in (PATH, "/")}
    error = await refused(fetch(http, client_id), fragment)
    assert "hunter2" not in error.description
    assert host.hits == 0


# ---------------------------------------------------------------- the response


async def test_redirects_are_not_followed(host: Host, http: httpx.AsyncClient) -> None:
    host.replies[PATH] = Reply(status=302, headers={"Location": "/elsewhere.json"})
    host.serve({"client_id": host.url()}, path="/elsewhere.json")
    await refused(fetch(http, host.url()), "redirect (302)")
    assert [path for path, _ in host.requests] == [PATH]


async def test_non_200_is_refused(host: Host, http: httpx.AsyncClient) -> None:
    await refused(fetch(http, host.url("/missing.json")), "HTTP status 404")


@pytest.mark.parametrize("content_type", ["text/html", "text/plain", "application/jsonp", None])
async def test_content_type_must_be_json(host: Host, http: httpx.AsyncClient, content_type: str | None) -> None:
    host.serve({"client_id": host.url()}, content_type=content_type)
    await refused(fetch(http, host.url()), "Content-Type")
    assert host.hits == 1


async def test_structured_json_suffix_is_accepted(host: Host, http: httpx.AsyncClient) -> None:
    host.serve({"client_id": host.url()}, content_type="application/client-metadata+json")
    assert (await fetch(http, host.url()))["client_id"] == host.url()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"[]", "not a JSON object"),
        (b'"https://x"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b"{not json", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
    ids=["array", "string", "null", "malformed", "deeply-nested"],
)
async def test_document_must_be_a_json_object(host: Host, http: httpx.AsyncClient, body: bytes, fragment: str) -> None:
    host.replies[PATH] = Reply(body=body)
    await refused(fetch(http, host.url()), fragment)


@pytest.mark.parametrize(
    "document_id",
    [None, "{url}/", "{url}?", "{upper}", "HTTP://127.0.0.1:{port}/client.json", "https://other.example/client.json"],
    ids=["missing", "trailing-slash", "empty-query", "case", "scheme-case", "other"],
)
async def test_client_id_must_match_the_url_exactly(
    host: Host, http: httpx.AsyncClient, document_id: str | None
) -> None:
    document: dict[str, Any] = {"client_name": "x"}
    if document_id is not None:
        document["client_id"] = document_id.format(url=host.url(), upper=host.url().upper(), port=host.port)
    host.serve(document)
    await refused(fetch(http, host.url()), "not exactly the URL")


@pytest.mark.parametrize(
    "extra",
    [
        {"client_secret": "s3cret"},
        {"client_secret_expires_at": 0},
        {"token_endpoint_auth_method": "client_secret_basic"},
    ],
)
async def test_shared_secret_clients_are_refused(host: Host, http: httpx.AsyncClient, extra: dict[str, Any]) -> None:
    host.serve({"client_id": host.url(), **extra})
    error = await refused(fetch(http, host.url()), "§4")
    assert "s3cret" not in error.description


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "streamed"])
async def test_oversized_document_is_refused(host: Host, http: httpx.AsyncClient, send_length: bool) -> None:
    host.serve({"client_id": host.url(), "padding": "x" * 500}, send_length=send_length)
    await refused(fetch(http, host.url(), max_bytes=200), "larger than 200 bytes")
    assert (await fetch(http, host.url(), max_bytes=1000))["client_id"] == host.url(), "fits under a larger limit"


async def test_compressed_body_is_refused(host: Host, http: httpx.AsyncClient) -> None:
    host.serve({"client_id": host.url()}, headers={"Content-Encoding": "gzip"})
    await refused(fetch(http, host.url()), "Content-Encoding")


async def test_slow_host_times_out(host: Host, http: httpx.AsyncClient) -> None:
    host.serve({"client_id": host.url()}, wait=threading.Event())  # released at teardown
    started = time.monotonic()
    await refused(fetch(http, host.url(), timeout=0.3), "no complete answer within 0.3s")
    assert time.monotonic() - started < 3
    assert host.hits == 1


async def test_a_host_that_drips_the_body_hits_the_total_time_limit(host: Host, http: httpx.AsyncClient) -> None:
    """Every read is quick, so only a deadline on the whole fetch (not httpx's per-read timeout) stops it."""
    host.serve({"client_id": host.url(), "padding": "x" * 100}, drip=threading.Event())
    started = time.monotonic()
    await refused(fetch(http, host.url(), timeout=0.5), "no complete answer within 0.5s")
    assert time.monotonic() - started < 3


# ---------------------------------------------------------------- https: TLS still verifies the name


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for DNS `name`: (server context, client context that trusts it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


@pytest.mark.parametrize(("cert_name", "ok"), [("localhost", True), ("other.example", False)])
async def test_https_to_the_pinned_address_verifies_the_certificate_for_the_name(
    tmp_path: Path, cert_name: str, ok: bool
) -> None:
    server_tls, client_tls = _certificate(tmp_path, cert_name)
    with running(Host(), tls=server_tls) as tls_host:
        client_id = tls_host.url(host="localhost")
        tls_host.serve({"client_id": client_id})
        async with httpx.AsyncClient(trust_env=False, verify=client_tls) as http:
            call = fetch(http, client_id, allow_http=False)
            if ok:
                assert (await call)["client_id"] == client_id
                assert tls_host.requests == [(PATH, f"localhost:{tls_host.port}")]
            else:
                await refused(call, "TLS")
                assert tls_host.hits == 0, "the handshake failed: no request was sent"


# ---------------------------------------------------------------- the cache


async def test_cache_keeps_a_document_for_its_ttl(host: Host, http: httpx.AsyncClient) -> None:
    clock = ManualClock()
    cache = ClientMetadataCache(http, clock, ttl=300)
    host.serve({"client_id": host.url(), "client_name": "one"})
    for _ in range(2):  # the fetched copy and a cached copy: changing either leaves the cache alone
        got = await cache.get(host.url(), allow_http=True, allow_private=True)
        got["client_name"] = "changed by the caller"
    clock.advance(299)
    assert (await cache.get(host.url(), allow_http=True, allow_private=True))["client_name"] == "one"
    assert host.hits == 1
    host.serve({"client_id": host.url(), "client_name": "two"})
    clock.advance(2)
    assert (await cache.get(host.url(), allow_http=True, allow_private=True))["client_name"] == "two"
    assert host.hits == 2


async def test_cache_does_not_keep_failures(host: Host, http: httpx.AsyncClient) -> None:
    cache = ClientMetadataCache(http, ManualClock())
    host.serve({"client_id": "https://someone.else/client.json"})
    await refused(cache.get(host.url(), allow_http=True, allow_private=True), "not exactly the URL")
    host.serve({"client_id": host.url()})
    assert (await cache.get(host.url(), allow_http=True, allow_private=True))["client_id"] == host.url()
    assert host.hits == 2


async def test_cache_never_serves_a_stricter_policy_from_a_looser_fetch(host: Host, http: httpx.AsyncClient) -> None:
    cache = ClientMetadataCache(http, ManualClock())
    host.serve({"client_id": host.url()})
    await cache.get(host.url(), allow_http=True, allow_private=True)
    await refused(cache.get(host.url(), allow_http=True, allow_private=False), "private or reserved address")
    assert host.hits == 1


async def test_cache_shares_one_fetch_between_concurrent_callers(host: Host, http: httpx.AsyncClient) -> None:
    cache = ClientMetadataCache(http, ManualClock())
    host.serve({"client_id": host.url()})
    documents = await asyncio.gather(*(cache.get(host.url(), allow_http=True, allow_private=True) for _ in range(8)))
    assert all(d == {"client_id": host.url()} for d in documents)
    assert host.hits == 1
    # Concurrent failures: every caller gets the refusal, still from one fetch.
    host.serve({"client_id": "https://someone.else/x"}, path="/bad.json")
    results = await asyncio.gather(
        *(cache.get(host.url("/bad.json"), allow_http=True, allow_private=True) for _ in range(4)),
        return_exceptions=True,
    )
    assert all(isinstance(r, AuthError) and r.code == "invalid_client_id" for r in results)
    assert host.hits == 2


async def test_cache_is_bounded(host: Host, http: httpx.AsyncClient) -> None:
    clock = ManualClock()
    cache = ClientMetadataCache(http, clock, max_entries=2)
    for name in ("a", "b", "c"):
        host.serve({"client_id": host.url(f"/{name}.json")}, path=f"/{name}.json")
        await cache.get(host.url(f"/{name}.json"), allow_http=True, allow_private=True)
        clock.advance(1)
    assert host.hits == 3
    await cache.get(host.url("/c.json"), allow_http=True, allow_private=True)
    await cache.get(host.url("/b.json"), allow_http=True, allow_private=True)
    assert host.hits == 3, "the two newest are held"
    await cache.get(host.url("/a.json"), allow_http=True, allow_private=True)
    assert host.hits == 4, "the oldest was dropped"


async def test_cache_keeps_a_document_as_long_as_its_headers_say(host: Host, http: httpx.AsyncClient) -> None:
    clock = ManualClock()
    cache = ClientMetadataCache(http, clock, ttl=300)
    host.serve({"client_id": host.url(), "client_name": "one"}, headers={"Cache-Control": "public, max-age=60"})
    await cache.get(host.url(), allow_http=True, allow_private=True)
    clock.advance(59)
    await cache.get(host.url(), allow_http=True, allow_private=True)
    assert host.hits == 1, "fresh for its max-age"
    clock.advance(2)
    host.serve({"client_id": host.url(), "client_name": "two"}, headers={"Cache-Control": "no-store"})
    assert (await cache.get(host.url(), allow_http=True, allow_private=True))["client_name"] == "two"
    assert (await cache.get(host.url(), allow_http=True, allow_private=True))["client_name"] == "two"
    assert host.hits == 3, "stale after its max-age; a no-store document is fetched every time"


async def test_a_long_max_age_is_held_a_day_at_most(host: Host, http: httpx.AsyncClient) -> None:
    clock = ManualClock()
    cache = ClientMetadataCache(http, clock)
    host.serve({"client_id": host.url()}, headers={"Cache-Control": "max-age=31536000"})
    await cache.get(host.url(), allow_http=True, allow_private=True)
    clock.advance(MAX_FRESHNESS - 1)
    await cache.get(host.url(), allow_http=True, allow_private=True)
    assert host.hits == 1
    clock.advance(2)
    await cache.get(host.url(), allow_http=True, allow_private=True)
    assert host.hits == 2


DATE = "Sun, 06 Dec 2026 10:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, 300.0),  # nothing said: the cache's own default
        ({"Cache-Control": "max-age=60"}, 60.0),
        ({"Cache-Control": "public, MAX-AGE=120"}, 120.0),  # directives are case-insensitive
        ({"Cache-Control": 'max-age="90"'}, 90.0),  # a quoted value is accepted (RFC 9111 §5.2)
        ({"Cache-Control": "max-age=60", "Age": "20"}, 40.0),  # already 20 s old
        ({"Cache-Control": "max-age=60", "Age": "90"}, 0.0),
        ({"Cache-Control": "no-store"}, 0.0),
        ({"Cache-Control": "no-cache, max-age=600"}, 0.0),  # must be checked again: fetched again
        ({"Cache-Control": "max-age=soon"}, 0.0),  # malformed: stale
        ({"Cache-Control": "max-age=-5"}, 0.0),
        ({"Cache-Control": "max-age=999999999999"}, MAX_FRESHNESS),
        ({"Expires": "Sun, 06 Dec 2026 10:10:00 GMT", "Date": DATE}, 600.0),
        ({"Expires": "Sun, 06 Dec 2026 09:00:00 GMT", "Date": DATE}, 0.0),  # already expired
        ({"Expires": "0", "Date": DATE}, 0.0),  # an invalid date is in the past (§5.3)
        ({"Cache-Control": "max-age=30", "Expires": "Sun, 06 Dec 2026 11:00:00 GMT", "Date": DATE}, 30.0),
    ],
)
def test_freshness_follows_rfc_9111(headers: dict[str, str], seconds: float) -> None:
    assert freshness(httpx.Headers(headers), default=300.0, ceiling=MAX_FRESHNESS) == seconds


def test_freshness_reads_every_cache_control_line() -> None:
    headers = httpx.Headers([("Cache-Control", "max-age=60"), ("Cache-Control", "no-store")])
    assert freshness(headers, default=300.0, ceiling=MAX_FRESHNESS) == 0.0
    assert freshness(headers, default=300.0, ceiling=MAX_FRESHNESS, floor=60.0) == 60.0  # a JWKS's floor


# ---------------------------------------------------------------- the operator's host policy


@pytest.mark.parametrize(
    ("allow", "deny", "host", "permitted"),
    [
        ((), (), "anything.example", True),
        (("example.com",), (), "example.com", True),
        (("example.com",), (), "App.Example.COM", True),  # names compare case-insensitively
        (("example.com",), (), "app.example.com.", True),  # a trailing root dot is the same name
        (("example.com",), (), "badexample.com", False),  # a label boundary, not a string suffix
        (("example.com",), (), "example.com.evil.net", False),
        (("example.com",), ("ads.example.com",), "ads.example.com", False),  # deny wins
        (("example.com",), ("ads.example.com",), "x.ads.example.com", False),
        (("example.com",), ("ads.example.com",), "www.example.com", True),
        ((), ("evil.net",), "www.evil.net", False),
        ((), ("evil.net",), "good.net", True),
        (("203.0.113.7",), (), "203.0.113.7", True),
        (("203.0.113.7",), (), "x.203.0.113.7", False),  # an IP entry covers only itself
    ],
)
def test_host_policy(allow: tuple[str, ...], deny: tuple[str, ...], host: str, permitted: bool) -> None:
    assert HostPolicy(allow, deny).permits(host) is permitted


@pytest.mark.parametrize(
    ("hosts", "names"),
    [
        (HostPolicy(allow=("example.com",)), ("127.0.0.1", "localhost")),
        (HostPolicy(deny=("127.0.0.1",)), ("127.0.0.1",)),  # the policy is on the URL's host, not its addresses
        (HostPolicy(deny=("localhost",)), ("localhost",)),
    ],
)
async def test_a_refused_host_gets_no_request_cached_or_not(
    host: Host, http: httpx.AsyncClient, hosts: HostPolicy, names: tuple[str, ...]
) -> None:
    clock = ManualClock()
    for name in names:
        host.serve({"client_id": host.url(host=name)})
        await refused(
            ClientMetadataCache(http, clock, hosts=hosts).get(host.url(host=name), allow_http=True, allow_private=True),
            "not one this server accepts",
        )
    assert host.hits == 0
    # A document cached before the policy existed is not served under it either.
    name = names[-1]
    host.serve({"client_id": host.url(host=name)})
    open_cache = ClientMetadataCache(http, clock)
    await open_cache.get(host.url(host=name), allow_http=True, allow_private=True)
    open_cache._hosts = hosts  # the same cache, restarted with the policy
    await refused(open_cache.get(host.url(host=name), allow_http=True, allow_private=True), "not one")
    assert host.hits == 1


async def test_an_allowed_host_is_fetched(host: Host, http: httpx.AsyncClient) -> None:
    cache = ClientMetadataCache(http, ManualClock(), hosts=HostPolicy(allow=("localhost",), deny=("evil.net",)))
    host.serve({"client_id": host.url(host="localhost")})
    assert (await cache.get(host.url(host="localhost"), allow_http=True, allow_private=True))["client_id"]
    assert host.hits == 1


# ---------------------------------------------------------------- the address classifier


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",  # noqa: S104
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space (RFC 6598)
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",  # site-local
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0.0.0.0",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
    ],
)
def test_classifier_refuses_non_public_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:81b::200e", "::ffff:8.8.8.8"],
)
def test_classifier_accepts_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# ---------------------------------------------------------------- DNS answers (the resolver is the seam)


def _answers(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Make the module's one DNS lookup answer `addresses`; returns the names it was asked for."""
    asked: list[str] = []

    async def resolve(name: str, port: int) -> list[Any]:
        asked.append(name)
        return [ipaddress.ip_address(a) for a in addresses]

    monkeypatch.setattr("app.outbound.cimd._resolve", resolve)
    return asked


async def test_the_request_goes_to_the_checked_address_not_to_a_new_lookup(
    host: Host, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `client.invalid` has no DNS entry: the fetch can only succeed if httpx connects to the address we
    # checked instead of resolving the name again (which is what a rebinding attack would exploit).
    client_id = host.url(host="client.invalid")
    asked = _answers(monkeypatch, "127.0.0.1")
    host.serve({"client_id": client_id})
    assert (await fetch(http, client_id))["client_id"] == client_id
    assert asked == ["client.invalid"]
    assert host.requests == [(PATH, f"client.invalid:{host.port}")]


async def test_one_private_answer_among_public_ones_refuses(
    host: Host, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id = host.url(host="mixed.invalid")
    _answers(monkeypatch, "8.8.8.8", "127.0.0.1")
    host.serve({"client_id": client_id})
    await refused(fetch(http, client_id, allow_private=False), "private or reserved address")
    assert host.hits == 0


async def test_the_next_checked_address_is_tried_when_one_refuses_connections(
    host: Host, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id = host.url(host="two.invalid")
    _answers(monkeypatch, "127.0.0.2", "127.0.0.1")  # the server listens on 127.0.0.1 only
    host.serve({"client_id": client_id})
    assert (await fetch(http, client_id))["client_id"] == client_id
    assert host.hits == 1
