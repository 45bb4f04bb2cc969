"""What both sides of the wire agree on: the server (app.*) and the agent side (app.agent.*).

Grant and assertion URNs, the well-known paths, an origin, RFC 3339 times as the wire writes them, and
the proof of work's rule (spec/protocol.md § Proof of work) with its solver. Invariant: this module
imports nothing from app, so the agent side can use it without pulling in the server.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523
URN_ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"  # the ID-JAG's assertion type
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"  # its RFC 8414 authorization grant profile

# Relative to the issuer (RFC 8414 appends; RFC 8414 § 3.1 and RFC 9728 § 3.1 insert before the path).
AS_METADATA = "/.well-known/oauth-authorization-server"
PROTECTED_RESOURCE = "/.well-known/oauth-protected-resource"


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def parse_rfc3339(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (a `Z` or an offset)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# ---- proof of work: a decimal nonce such that SHA-256 of "challenge:nonce" has `difficulty` leading zero bits


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def meets(challenge: str, nonce: str, difficulty: int) -> bool:
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    return leading_zero_bits(digest) >= difficulty


class SolveCancelled(Exception):
    """``solve`` stopped because its ``cancel`` event was set."""


def solve(
    challenge: str,
    difficulty: int,
    start: int = 0,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """The first nonce from ``start`` that ``meets`` the difficulty.

    ``progress(tried, expected)`` is called every 65,536 tries, from the solving thread; ``cancel`` is
    looked at as often (set: SolveCancelled). Pure CPU: run it off an event loop in async code."""
    prefix = f"{challenge}:".encode()
    # Below the target is the same as `meets` (that many leading zero bits), with one comparison per try.
    target = 1 << (256 - difficulty)
    expected = 1 << difficulty
    nonce = start
    while True:
        for _ in range(65_536):
            if int.from_bytes(hashlib.sha256(prefix + str(nonce).encode()).digest(), "big") < target:
                return str(nonce)
            nonce += 1
        if progress is not None:
            progress(nonce - start, expected)
        if cancel is not None and cancel.is_set():
            raise SolveCancelled
