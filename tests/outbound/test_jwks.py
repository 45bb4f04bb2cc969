"""JwksCache against a real JWKS endpoint on 127.0.0.1: caching per Cache-Control within a floor and a
ceiling, one rate-limited refetch on an unknown kid, one shared in-flight fetch, stale-if-error, size and
format limits, and which keys may verify which algorithm. Time moves only through a ManualClock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app.clock import ManualClock
from app.errors import AuthError
from app.outbound.jwks import JwksCache

pytestmark = pytest.mark.anyio

MIN_TTL, MAX_TTL, INTERVAL = 60, 3600, 30


# ---------------------------------------------------------------- keys


@dataclass
class Key:
    private: Any
    jwk: dict[str, Any]
    alg: str

    def sign(self) -> str:
        kid = self.jwk.get("kid")
        return jwt.encode({"sub": "alice"}, self.private, algorithm=self.alg, headers={"kid": kid} if kid else None)


def _public_jwk(private: Any, kid: str | None, **extra: Any) -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    jwk.update(extra)
    return jwk


_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_RSA_SHORT = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)


def ec_key(kid: str | None = "a", for_alg: str = "ES256", **extra: Any) -> Key:
    """A fresh EC key on the curve `for_alg` needs; `extra` members go into its public JWK."""
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[for_alg]
    private = ec.generate_private_key(curve)
    return Key(private, _public_jwk(private, kid, **extra), for_alg)


def verifies(found: jwt.PyJWK, key: Key) -> bool:
    """The returned key is the one that verifies `key`'s signatures (not merely a key with that kid)."""
    try:
        jwt.decode(key.sign(), found, algorithms=[key.alg])
    except jwt.InvalidSignatureError:
        return False
    return True


# ---------------------------------------------------------------- the provider: a real HTTP server


@dataclass
class Provider:
    """Serves `keys` (or a canned failure) at /jwks.json with `cache_control`; counts the requests."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    cache_control: str | None = "max-age=600"
    age: str | None = None
    status: int = 200
    raw_body: bytes | None = None  # overrides the JWKS document
    send_length: bool = True
    drip: threading.Event | None = None  # send the body one byte per 0.1 s until this is set
    hits: int = 0
    accept: list[str | None] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def body(self) -> bytes:
        if self.raw_body is not None:
            return self.raw_body
        return json.dumps({"keys": self.keys}).encode()


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                provider.hits += 1
                provider.accept.append(self.headers.get("Accept"))
                provider.paths.append(self.path)
            if self.path == "/elsewhere.json":
                status, body = 200, json.dumps({"keys": provider.keys}).encode()
            else:
                status, body = provider.status, provider.body()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status in (301, 302):
                self.send_header("Location", "/elsewhere.json")
            if provider.cache_control is not None:
                self.send_header("Cache-Control", provider.cache_control)
            if provider.age is not None:
                self.send_header("Age", provider.age)
            if provider.send_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client may stop reading
                if provider.drip is None:
                    self.wfile.write(body)
                    return
                for byte in body:  # each byte well within httpx's read timeout
                    if provider.drip.wait(0.1):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(p))
    p.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield p
    finally:
        if p.drip is not None:
            p.drip.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cache(http: httpx.AsyncClient, clock: ManualClock) -> JwksCache:
    return JwksCache(http, clock, min_ttl=MIN_TTL, max_ttl=MAX_TTL, refetch_interval=INTERVAL, max_bytes=4096)


async def expect_error(code: str, call: Any) -> AuthError:
    with pytest.raises(AuthError) as info:
        await call
    assert info.value.code == code, info.value.description
    return info.value


# ---------------------------------------------------------------- fetching and caching


async def test_returns_the_key_named_by_kid(provider: Provider, cache: JwksCache) -> None:
    a, b = ec_key("a"), ec_key("b")
    provider.keys = [a.jwk, b.jwk]
    found = await cache.key(provider.uri, "b", "ES256")
    assert verifies(found, b)
    assert not verifies(found, a)
    assert found.algorithm_name == "ES256"
    assert provider.accept == ["application/json"]
    assert provider.hits == 1


@pytest.mark.parametrize(
    ("cache_control", "age", "ttl"),
    [
        ("max-age=600", None, 600),
        ("public, max-age=600", "500", MIN_TTL + 40),  # RFC 9111: what is left is max-age - Age = 100
        ("max-age=5", None, MIN_TTL),  # floor
        ("max-age=999999999", None, MAX_TTL),  # ceiling
        ("no-store", None, MIN_TTL),
        ("no-cache, max-age=600", None, MIN_TTL),
        ("max-age=soon", None, MIN_TTL),
        (None, None, MIN_TTL),
    ],
)
async def test_keys_are_cached_per_cache_control_within_floor_and_ceiling(
    provider: Provider, cache: JwksCache, clock: ManualClock, cache_control: str | None, age: str | None, ttl: int
) -> None:
    a = ec_key("a")
    provider.keys, provider.cache_control, provider.age = [a.jwk], cache_control, age
    await cache.key(provider.uri, "a", "ES256")
    clock.advance(ttl - 1)
    await cache.key(provider.uri, "a", "ES256")
    assert provider.hits == 1, "still fresh: served from the cache"
    clock.advance(2)
    assert verifies(await cache.key(provider.uri, "a", "ES256"), a)
    assert provider.hits == 2, "expired: fetched again"


async def test_unknown_kid_refetches_once_and_finds_a_rotated_key(
    provider: Provider, cache: JwksCache, clock: ManualClock
) -> None:
    a, b = ec_key("a"), ec_key("b")
    provider.keys = [a.jwk]
    await cache.key(provider.uri, "a", "ES256")
    provider.keys = [a.jwk, b.jwk]  # the provider rotates in a new key
    clock.advance(INTERVAL)
    assert verifies(await cache.key(provider.uri, "b", "ES256"), b)
    assert provider.hits == 2
    assert verifies(await cache.key(provider.uri, "b", "ES256"), b)
    assert provider.hits == 2, "the refreshed set is cached"


async def test_a_kid_that_stays_unknown_costs_exactly_one_refetch(
    provider: Provider, cache: JwksCache, clock: ManualClock
) -> None:
    provider.keys = [ec_key("a").jwk]
    await cache.key(provider.uri, "a", "ES256")
    clock.advance(INTERVAL)
    error = await expect_error("invalid_signature", cache.key(provider.uri, "nope", "ES256"))
    assert "no key with that kid" in error.description
    assert provider.hits == 2


async def test_refetches_on_unknown_kids_are_rate_limited(
    provider: Provider, cache: JwksCache, clock: ManualClock
) -> None:
    a = ec_key("a")
    provider.keys = [a.jwk]
    await cache.key(provider.uri, "a", "ES256")
    clock.advance(INTERVAL)
    await expect_error("invalid_signature", cache.key(provider.uri, "x1", "ES256"))
    assert provider.hits == 2
    # A flood of random kids within the interval: refused from the cache, the provider sees nothing.
    for i in range(20):
        clock.advance(1)
        await expect_error("invalid_signature", cache.key(provider.uri, f"random-{i}", "ES256"))
    assert provider.hits == 2
    assert verifies(await cache.key(provider.uri, "a", "ES256"), a), "known kids keep working"
    clock.advance(INTERVAL - 20)
    await expect_error("invalid_signature", cache.key(provider.uri, "x2", "ES256"))
    assert provider.hits == 3, "after the interval: exactly one new fetch"


async def test_the_first_unknown_kid_right_after_a_fetch_waits_for_the_interval(
    provider: Provider, cache: JwksCache, clock: ManualClock
) -> None:
    provider.keys = [ec_key("a").jwk]
    await cache.key(provider.uri, "a", "ES256")
    b = ec_key("b")
    provider.keys = [b.jwk]
    await expect_error("invalid_signature", cache.key(provider.uri, "b", "ES256"))
    assert provider.hits == 1
    clock.advance(INTERVAL)
    assert verifies(await cache.key(provider.uri, "b", "ES256"), b)
    assert provider.hits == 2


async def test_concurrent_callers_share_one_fetch(provider: Provider, cache: JwksCache, clock: ManualClock) -> None:
    a, b = ec_key("a"), ec_key("b")
    provider.keys = [a.jwk]
    found = await asyncio.gather(*(cache.key(provider.uri, "a", "ES256") for _ in range(10)))
    assert provider.hits == 1
    assert all(key is found[0] for key in found)
    provider.keys = [a.jwk, b.jwk]
    clock.advance(INTERVAL)
    found = await asyncio.gather(*(cache.key(provider.uri, "b", "ES256") for _ in range(10)))
    assert provider.hits == 2, "ten callers with the same new kid: one refetch"
    assert all(verifies(key, b) for key in found)


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(provider: Provider, cache: JwksCache) -> None:
    a = ec_key("a")
    provider.keys = [a.jwk]
    first = asyncio.ensure_future(cache.key(provider.uri, "a", "ES256"))
    second = asyncio.ensure_future(cache.key(provider.uri, "a", "ES256"))
    await asyncio.sleep(0)  # both have joined the fetch
    first.cancel()
    assert verifies(await second, a)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert provider.hits == 1


# ---------------------------------------------------------------- failures


async def test_stale_keys_are_used_when_the_provider_fails(
    provider: Provider, cache: JwksCache, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    a = ec_key("a")
    provider.keys, provider.cache_control = [a.jwk], "max-age=60"
    await cache.key(provider.uri, "a", "ES256")
    provider.status = 500
    clock.advance(61)
    with caplog.at_level(logging.WARNING, logger="app.outbound.jwks"):
        found = await cache.key(provider.uri, "a", "ES256")
    assert verifies(found, a), "stale-if-error"
    assert provider.hits == 2
    assert any("HTTP status 500" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    # A kid the stale set lacks: unavailable (not invalid), and no new request until the interval is over.
    error = await expect_error("temporarily_unavailable", cache.key(provider.uri, "b", "ES256"))
    assert error.headers["Retry-After"] == str(INTERVAL)
    assert error.status == 503
    assert provider.hits == 2
    clock.advance(10)
    error = await expect_error("temporarily_unavailable", cache.key(provider.uri, "b", "ES256"))
    assert error.headers["Retry-After"] == str(INTERVAL - 10)
    assert provider.hits == 2
    assert verifies(await cache.key(provider.uri, "a", "ES256"), a)
    # The provider recovers: the next attempt after the interval replaces the stale set.
    b = ec_key("b")
    provider.status, provider.keys = 200, [b.jwk]
    clock.advance(INTERVAL)
    assert verifies(await cache.key(provider.uri, "b", "ES256"), b)
    assert provider.hits == 3


async def test_first_fetch_failing_is_temporarily_unavailable(provider: Provider, cache: JwksCache) -> None:
    provider.status = 503
    error = await expect_error("temporarily_unavailable", cache.key(provider.uri, "a", "ES256"))
    assert int(error.headers["Retry-After"]) >= 1
    assert provider.hits == 1


async def test_connection_refused_is_temporarily_unavailable(cache: JwksCache) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error = await expect_error("temporarily_unavailable", cache.key(f"http://127.0.0.1:{port}/jwks.json", "a", "ES256"))
    assert "Retry-After" in error.headers


async def test_redirects_are_not_followed(provider: Provider, cache: JwksCache) -> None:
    provider.keys, provider.status = [ec_key("a").jwk], 302
    await expect_error("temporarily_unavailable", cache.key(provider.uri, "a", "ES256"))
    assert provider.paths == ["/jwks.json"]


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "streamed"])
async def test_oversized_jwks_is_refused(provider: Provider, cache: JwksCache, send_length: bool) -> None:
    provider.keys = [ec_key("a").jwk]
    provider.raw_body = json.dumps({"keys": provider.keys, "padding": "x" * 5000}).encode()
    provider.send_length = send_length
    await expect_error("temporarily_unavailable", cache.key(provider.uri, "a", "ES256"))
    assert provider.hits == 1


@pytest.mark.parametrize(
    "body",
    [b"<html>not json</html>", b"[]", b'{"keys": {"kid": "a"}}', b'{"no_keys": []}', b"\xff\xfe", b"[" * 4000],
    ids=["html", "array", "keys-not-array", "no-keys", "binary", "deeply-nested"],
)
async def test_a_body_that_is_not_a_jwk_set_is_a_fetch_failure(
    provider: Provider, cache: JwksCache, body: bytes
) -> None:
    provider.raw_body = body
    await expect_error("temporarily_unavailable", cache.key(provider.uri, "a", "ES256"))


# ---------------------------------------------------------------- which keys may verify what


@pytest.mark.parametrize("alg", ["none", "HS256", "HS384", "HS512", "ES256K", "", "es256"])
async def test_none_and_hmac_are_refused_before_any_fetch(provider: Provider, cache: JwksCache, alg: str) -> None:
    provider.keys = [{"kty": "oct", "kid": "a", "k": "c2VjcmV0"}, ec_key("a").jwk]
    error = await expect_error("invalid_signature", cache.key(provider.uri, "a", alg))
    assert "alg" in error.description
    assert provider.hits == 0


async def test_oct_keys_and_mismatched_keys_are_ignored(
    provider: Provider, cache: JwksCache, http: httpx.AsyncClient
) -> None:
    good = ec_key("a")
    p384 = ec_key("a", for_alg="ES384")
    decoys: list[Any] = [
        {"kty": "oct", "kid": "a", "k": "c2VjcmV0LWtleS1tYXRlcmlhbA"},
        ec_key("a", alg="ES384").jwk,  # a P-256 key that declares another alg
        ec_key("a", use="enc").jwk,  # not a signing key
        ec_key("a", key_ops=["encrypt"]).jwk,
        p384.jwk,  # right kty, wrong curve for ES256
        _public_jwk(_RSA, "a"),  # RSA key, EC algorithm
        _public_jwk(ed25519.Ed25519PrivateKey.generate(), "a"),
        {"kty": "EC", "kid": "a", "crv": "P-256", "x": "garbage", "y": "garbage"},
        "not an object",
    ]
    provider.keys = decoys
    await expect_error("invalid_signature", cache.key(provider.uri, "a", "ES256"))
    # Among the decoys, the one genuine ES256 signing key is found, and only it.
    provider.keys = [*decoys[:-1], good.jwk]
    fresh = JwksCache(http, ManualClock())
    assert verifies(await fresh.key(provider.uri, "a", "ES256"), good)
    assert verifies(await fresh.key(provider.uri, "a", "ES384"), p384), "the P-384 key serves ES384"


async def test_keys_with_use_sig_and_matching_alg_are_accepted(provider: Provider, cache: JwksCache) -> None:
    a = ec_key("a", use="sig", alg="ES256", key_ops=["verify"])
    provider.keys = [a.jwk]
    assert verifies(await cache.key(provider.uri, "a", "ES256"), a)


async def test_rsa_pss_and_eddsa_keys(provider: Provider, cache: JwksCache) -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    provider.keys = [_public_jwk(_RSA, "r"), _public_jwk(ed, "e")]
    for alg in ("RS256", "PS384"):
        assert verifies(await cache.key(provider.uri, "r", alg), Key(_RSA, provider.keys[0], alg))
    assert verifies(await cache.key(provider.uri, "e", "EdDSA"), Key(ed, provider.keys[1], "EdDSA"))
    await expect_error("invalid_signature", cache.key(provider.uri, "e", "RS256"))


async def test_short_rsa_keys_and_published_private_keys_are_not_trusted(provider: Provider, cache: JwksCache) -> None:
    leaked = ec_key("leaked")
    # The full private JWK (with "d"): whoever reads the JWKS can sign, so it is no proof of anything.
    leaked.jwk = jwt.algorithms.ECAlgorithm.to_jwk(leaked.private, as_dict=True) | {"kid": "leaked"}
    provider.keys = [_public_jwk(_RSA_SHORT, "short"), leaked.jwk]
    await expect_error("invalid_signature", cache.key(provider.uri, "short", "RS256"))
    await expect_error("invalid_signature", cache.key(provider.uri, "leaked", "ES256"))


async def test_kid_none_uses_the_only_key_for_the_alg(provider: Provider, cache: JwksCache) -> None:
    only = ec_key(None)
    provider.keys = [only.jwk, _public_jwk(_RSA, "r")]  # the RSA key does not count for ES256
    assert verifies(await cache.key(provider.uri, None, "ES256"), only)


async def test_kid_none_with_several_keys_is_ambiguous(
    provider: Provider, cache: JwksCache, http: httpx.AsyncClient
) -> None:
    provider.keys = [ec_key("a").jwk, ec_key("b").jwk]
    error = await expect_error("invalid_signature", cache.key(provider.uri, None, "ES256"))
    assert "ambiguous" in error.description
    provider.keys = [ec_key("dup").jwk, ec_key("dup").jwk]
    fresh = JwksCache(http, ManualClock())
    error = await expect_error("invalid_signature", fresh.key(provider.uri, "dup", "ES256"))
    assert "ambiguous" in error.description


async def test_slow_provider_times_out(http: httpx.AsyncClient, clock: ManualClock) -> None:
    """A provider that accepts the connection and never answers: unavailable after `timeout`, not hung."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        cache = JwksCache(http, clock, timeout=0.2)
        started = time.monotonic()
        await expect_error("temporarily_unavailable", cache.key(f"http://127.0.0.1:{port}/jwks.json", "a", "ES256"))
        assert time.monotonic() - started < 2


async def test_a_provider_that_drips_the_body_hits_the_total_time_limit(
    provider: Provider, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Every read is quick, so only a deadline on the whole fetch (not httpx's per-read timeout) stops it."""
    provider.keys, provider.drip = [ec_key("a").jwk], threading.Event()
    cache = JwksCache(http, clock, timeout=0.5)
    started = time.monotonic()
    await expect_error("temporarily_unavailable", cache.key(provider.uri, "a", "ES256"))
    assert time.monotonic() - started < 3
