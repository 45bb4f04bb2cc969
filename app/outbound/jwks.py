"""Verification keys of trusted agent identity providers: a JWKS cache (RFC 7517) that a token cannot steer.

The cache only ever fetches the ``jwks_uri`` the caller passes in, which comes from the operator's trust
list; a token's ``jku``, ``x5u`` and ``jwk`` headers are never looked at (RFC 8725 §3.10: a key a token
points at is a key its author chose). Per URI it keeps the last good key set until ``now + clamp(freshness,
min_ttl, max_ttl)`` and goes back to the provider at most once per ``refetch_interval``: when the set
expires, or once when a token names a ``kid`` it does not hold (key rotation without a restart). A flood of
tokens with random kids therefore costs the provider one request per interval, and concurrent callers
share one in-flight request.

Keys are bound to one algorithm each (RFC 8725 §3.1): a key is offered for ``alg`` only if it is an
asymmetric signing key of the matching type, its own ``alg`` (if any) is ``alg``, and ``alg`` is one of
:data:`SIGNING_ALGORITHMS`, so ``none`` and HMAC (a public key used as an HMAC secret) cannot verify.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from app.clock import Clock
from app.errors import AuthError
from app.outbound.http import BadStatus, BodyRefused, NotJson, fetch_json, freshness

log = logging.getLogger(__name__)

# RFC 8725 §3.1 / §3.2: asymmetric signature algorithms only; never "none", never HS*.
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# RFC 7518 §3.4 and RFC 8037 §3.1: the key type (and curve) each algorithm needs.
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
# RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used with these algorithms."
MIN_RSA_BITS = 2048
# Private key members (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2): a published private key is not a trust anchor.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})

_SIGNATURE_HINT = "Sign the ID-JAG with a key the provider publishes at its jwks_uri and name it in `kid`."
_UNAVAILABLE_HINT = "Retry after the Retry-After seconds; the identity provider's keys could not be fetched."


class _FetchError(Exception):
    """Why a JWKS fetch failed; logged, never shown to a client."""


@dataclass(slots=True)
class _KeySet:
    by_alg: dict[str, list[jwt.PyJWK]]
    fetched_at: float
    expires_at: float


@dataclass(slots=True)
class _Source:
    """What we know about one jwks_uri."""

    keys: _KeySet | None = None
    attempted_at: float | None = None  # start of the last fetch, good or bad: the rate limit reads this
    failed: bool = False  # the last fetch failed
    inflight: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class KeysSeen:
    """One provider's key set as this process last fetched it (each process keeps its own cache)."""

    fetched_at: float | None  # the last good fetch
    expires_at: float | None
    attempted_at: float | None  # the last fetch, good or bad
    failed: bool  # the last fetch failed
    kids: list[str]


class JwksCache:
    """Provider keys per ``jwks_uri``, cached per Cache-Control within a floor and a ceiling.

    ``key()`` raises ``AuthError("invalid_signature")`` when the provider publishes no usable key for the
    token, and ``AuthError("temporarily_unavailable")`` (with ``Retry-After``) when the keys cannot be
    fetched and nothing cached can stand in. Entries are per configured URI, so the cache is bounded by the
    trust list.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        clock: Clock,
        *,
        min_ttl: float = 60,
        max_ttl: float = 86400,
        refetch_interval: float = 30,
        max_bytes: int = 65536,
        timeout: float = 5.0,
    ) -> None:
        if not 0 < min_ttl <= max_ttl:
            raise ValueError("need 0 < min_ttl <= max_ttl")
        self._http = http
        self._clock = clock
        self._min_ttl = min_ttl
        self._max_ttl = max_ttl
        self._refetch_interval = refetch_interval
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._sources: dict[str, _Source] = {}

    def seen(self, jwks_uri: str) -> KeysSeen | None:
        """What this process knows of ``jwks_uri`` (for the operator's console; None: never fetched here)."""
        source = self._sources.get(jwks_uri)
        if source is None or (source.keys is None and source.attempted_at is None):
            return None
        keys = source.keys
        kids = sorted({k.key_id or "(no kid)" for found in keys.by_alg.values() for k in found}) if keys else []
        return KeysSeen(
            fetched_at=keys.fetched_at if keys else None,
            expires_at=keys.expires_at if keys else None,
            attempted_at=source.attempted_at,
            failed=source.failed,
            kids=kids,
        )

    async def key(self, jwks_uri: str, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key that verifies a token with header ``kid`` and ``alg``, bound to ``alg``.

        ``kid`` None is accepted only when exactly one published key is usable for ``alg`` (RFC 7517 §4.5
        makes ``kid`` optional; with several candidates the choice would be a guess).
        """
        # RFC 8725 §3.1: the algorithm allow-list is ours, not the token's.
        if alg not in SIGNING_ALGORITHMS:
            raise AuthError(
                "invalid_signature",
                "The token's alg is not an accepted asymmetric signature algorithm.",
                _SIGNATURE_HINT,
            )
        source = self._sources.setdefault(jwks_uri, _Source())
        now = self._clock.now()
        if source.keys is not None and now < source.keys.expires_at:
            found = _select(source.keys, kid, alg)
            if found is not None:
                return found
        # Missing, expired, or the kid is unknown: go back to the provider if the rate limit allows.
        await self._refresh(jwks_uri, source)
        found = _select(source.keys, kid, alg) if source.keys is not None else None
        if found is not None:
            return found
        if source.failed:
            raise self._unavailable(source)
        raise AuthError(
            "invalid_signature", "The provider publishes no key with that kid for that alg.", _SIGNATURE_HINT
        )

    def _unavailable(self, source: _Source) -> AuthError:
        attempted = source.attempted_at if source.attempted_at is not None else self._clock.now()
        wait = max(1, math.ceil(attempted + self._refetch_interval - self._clock.now()))
        return AuthError(
            "temporarily_unavailable",
            "The identity provider's signing keys could not be fetched.",
            _UNAVAILABLE_HINT,
            headers={"Retry-After": str(wait)},
        )

    async def _refresh(self, jwks_uri: str, source: _Source) -> None:
        """Fetch once, unless a fetch is in flight (join it) or one started within ``refetch_interval``."""
        task = source.inflight
        if task is None:
            now = self._clock.now()
            if source.attempted_at is not None and now - source.attempted_at < self._refetch_interval:
                return  # rate-limited: decide with what we have
            source.attempted_at = now
            task = asyncio.get_running_loop().create_task(self._fetch_into(jwks_uri, source))
            source.inflight = task
            task.add_done_callback(_retrieve)
        # shield: a caller that goes away (client disconnect) does not cancel the fetch the others wait on.
        await asyncio.shield(task)

    async def _fetch_into(self, jwks_uri: str, source: _Source) -> None:
        try:
            document, headers = await self._download(jwks_uri)
            by_alg = _parse_jwks(document)
        except _FetchError as exc:
            source.failed = True
            if source.keys is not None:
                log.warning(
                    "JWKS fetch from %s failed (%s); serving keys fetched %.0fs ago until the next attempt",
                    jwks_uri,
                    exc,
                    self._clock.now() - source.keys.fetched_at,
                )
            else:
                log.warning("JWKS fetch from %s failed (%s); no cached keys", jwks_uri, exc)
            return
        finally:
            source.inflight = None
        now = self._clock.now()
        ttl = freshness(headers, default=self._min_ttl, floor=self._min_ttl, ceiling=self._max_ttl)
        source.keys = _KeySet(by_alg=by_alg, fetched_at=now, expires_at=now + ttl)
        source.failed = False

    async def _download(self, jwks_uri: str) -> tuple[object, httpx.Headers]:
        try:
            got = await fetch_json(self._http, jwks_uri, max_bytes=self._max_bytes, timeout=self._timeout)
        except BadStatus as exc:
            raise _FetchError(str(exc)) from None
        except BodyRefused as exc:
            raise _FetchError(f"the body is {exc}") from None
        except NotJson:
            raise _FetchError("body is not JSON") from None
        except TimeoutError:
            raise _FetchError(f"no complete answer within {self._timeout}s") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise _FetchError(f"{type(exc).__name__}: {exc}") from None
        return got.document, got.headers


def _retrieve(task: asyncio.Task[None]) -> None:
    # An unexpected error in a fetch nobody awaits any more must not end as "exception never retrieved".
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("JWKS fetch crashed", exc_info=exc)


def _parse_jwks(document: object) -> dict[str, list[jwt.PyJWK]]:
    """RFC 7517 §5: a JSON object whose ``keys`` member is an array of JWKs; each usable key per algorithm."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _FetchError("body is not a JWK Set (no `keys` array)")
    by_alg: dict[str, list[jwt.PyJWK]] = {alg: [] for alg in SIGNING_ALGORITHMS}
    for jwk in document["keys"]:
        # RFC 7517 §5: "Implementations SHOULD ignore JWKs within a JWK Set that use "kty" values that are
        # not understood by them, that are missing required members, or for which values are out of the
        # supported ranges."
        if not isinstance(jwk, dict):
            continue
        for alg in SIGNING_ALGORITHMS:
            parsed = _usable(jwk, alg)
            if parsed is not None:
                by_alg[alg].append(parsed)
    return by_alg


def _usable(jwk: dict[str, Any], alg: str) -> jwt.PyJWK | None:
    """``jwk`` as a key bound to ``alg`` (RFC 8725 §3.1: one key, one algorithm), or None if it may not be."""
    kty = jwk.get("kty")
    if alg.startswith(("RS", "PS")):
        fits = kty == "RSA"
    elif alg in _EC_CURVES:
        fits = kty == "EC" and jwk.get("crv") == _EC_CURVES[alg]
    else:  # EdDSA
        fits = kty == "OKP" and jwk.get("crv") in _OKP_CURVES
    if not fits:  # this also drops kty "oct": a symmetric key never verifies a provider's token
        return None
    if "use" in jwk and jwk["use"] != "sig":  # RFC 7517 §4.2
        return None
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):  # RFC 7517 §4.3
        return None
    if "alg" in jwk and jwk["alg"] != alg:  # RFC 7517 §4.4
        return None
    if "kid" in jwk and not isinstance(jwk["kid"], str):  # RFC 7517 §4.5: a case-sensitive string
        return None
    if _PRIVATE_MEMBERS & jwk.keys():
        return None
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    if kty == "RSA" and getattr(key.key, "key_size", 0) < MIN_RSA_BITS:
        return None
    return key


def _select(keys: _KeySet, kid: str | None, alg: str) -> jwt.PyJWK | None:
    """The one key for (kid, alg); None if there is none; ``invalid_signature`` if the choice is ambiguous."""
    candidates = keys.by_alg.get(alg, [])
    if kid is not None:
        candidates = [key for key in candidates if key.key_id == kid]
    if not candidates:
        return None
    if len(candidates) > 1:
        reason = "names no kid" if kid is None else "names a kid the provider uses for several keys"
        raise AuthError(
            "invalid_signature", f"The token {reason}, so the verification key is ambiguous.", _SIGNATURE_HINT
        )
    return candidates[0]
