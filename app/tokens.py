"""Credential formats: what each secret the service hands out looks like, and how it is checked.

Pure functions over keys (bytes), never the request context: a flow derives the key
(``ctx.keys.derive(purpose)``, ``ctx.pow_key``) and decides what a failure means for the protocol. The
invariant every format keeps: nothing secret is stored. A MAC'd token needs no record at all; a random
secret is stored only as its SHA-256 (``stored_hash``); a token that names a record names it in clear,
so one read finds it (one hash slot on Redis Cluster), never a global index.

- ids ``{prefix}_{random}`` (``new_id``): not secret, unique;
- claim token ``clm_{account}.{registration}.{mac}`` (``claim_token``): MAC under the ``claim-token``
  key, lives as long as the claim; nothing stored (the claim record is found by the ids in it);
- attempt token ``cvt_{account}.{registration}.{random}`` (``new_attempt_token``): the link a human
  opens; lives with its attempt (10 minutes); only ``stored_hash`` of it is stored;
- user code, ``CODE_DIGITS`` decimal digits (``new_user_code``): shown to the human once, 10-minute
  life; stored as ``code_hash``, a MAC over (attempt id, code) under the ``user-code`` key;
- refresh token ``art_{account}.{registration}.{seq}.{mac}`` (``refresh_token``): MAC under the
  ``refresh-token`` key over (account, registration, family, seq); only the family id and the live
  ``seq`` are stored; its lifetime is the grant's ``refresh_expires_at``;
- proof-of-work challenge ``v1.{id}.{expires_at}.{difficulty}.{mac}`` (``mint_challenge``): HMAC-SHA256
  under the PoW key, carries its own expiry and difficulty; its id is redeemed once;
- browser session cookie: random, stored as ``stored_hash``;
- admin key ``amk_{random}`` (``new_admin_key``): 32 random bytes for the operator's admin API client;
  configured as ``admin_key_hash`` (``sha256$`` + ``stored_hash``), found by comparing that hash with each
  configured one in constant time;
- identity assertion and access token: JWTs signed by the service's key (``app/flows/issue.py``); every
  decode of our own JWTs goes through ``OWN_JWS`` here, which checks the signature only (times read
  the injected clock instead);
- others' JWTs (an ID-JAG, an OIDC ID token, a security event token): read before verification with
  ``jose_segment``, then verified with ``SIGNATURE_ONLY`` here (signature only; the flow checks times
  and claims). These two are the service's only PyJWT instances.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any, Literal, NamedTuple

import jwt

from app.entropy import id_bytes
from app.errors import AuthError
from app.keys import b64url
from app.wire import nesting_within

TOKEN_ID = re.compile(r"[A-Za-z]{2,5}_[A-Za-z0-9_-]{10,64}")
MAX_TOKEN_LENGTH = 256  # every located token is far shorter; longer input is refused before any parsing
CODE_DIGITS = 6
# A code is read back as the page groups it ("870 581", "870-581"): spaces, dashes and case are noise.
_CODE_NOISE = re.compile(r"[\s\-\u2010-\u2015\u2212]+")
_SEQ = re.compile(r"0|[1-9][0-9]{0,9}")
CHALLENGE_VERSION = "v1"
MAX_CHALLENGE_LENGTH = 200


def _signature_only(require: list[str]) -> jwt.PyJWT:
    """A PyJWT that checks the signature alone: every time and audience check reads our injected clock
    and settings instead (PyJWT's own checks use the wall clock)."""
    return jwt.PyJWT(
        options={
            "verify_signature": True,
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_aud": False,
            "verify_iss": False,
            "require": require,
        }
    )


# Our own JWTs carry every registered claim the verifier then checks; others' JWTs (ID-JAGs, SETs, ID
# tokens) are checked claim by claim by their flow.
OWN_JWS = _signature_only(["iss", "sub", "aud", "exp", "iat", "jti"])
SIGNATURE_ONLY = _signature_only([])


def jose_segment(token: str, index: int) -> dict[str, Any]:
    """The decoded JSON header (0) or payload (1) of a compact JWS, before any verification."""
    try:
        part = token.split(".")[index]
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw) if nesting_within(raw) else None  # json.loads recurses once per level
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise AuthError("invalid_request", "the assertion is not a well-formed JWT") from exc
    if not isinstance(value, dict):
        raise AuthError("invalid_request", "the assertion is not a well-formed JWT")
    return value


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # in ASCII order


def _sortable_ms(now: float) -> str:
    """Milliseconds since the epoch in 8 base-62 digits, which sort as the times do (until the year 8900)."""
    n, digits = int(now * 1000), []
    for _ in range(8):
        n, d = divmod(n, 62)
        digits.append(_BASE62[d])
    return "".join(reversed(digits))


def new_id(prefix: str, nbytes: int = 16) -> str:
    """``prefix_`` + the creation time (sortable) + ``nbytes`` random bytes. The time prefix makes each
    store's primary keys grow at one end: an insert touches the B-tree's last pages, which consecutive
    inserts share, instead of a random page each (measured: ~10 WAL pages per registration on SQLite with
    random ids). The random part keeps ids unguessable as before."""
    return f"{prefix}_{_sortable_ms(time.time())}{b64url(id_bytes(nbytes))}"


def stored_hash(secret: str) -> str:
    """What is stored of a random secret (an attempt link, a session cookie): its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_admin_key() -> str:
    return f"amk_{secrets.token_urlsafe(32)}"


def admin_key_hash(key: str) -> str:
    """The configured form of an admin key (``[[admin_keys]] key_hash``)."""
    return "sha256$" + stored_hash(key)


def mac(key: bytes, *fields: str | int) -> str:
    """A 24-byte HMAC-SHA256 over ``fields`` (newline-separated), base64url: the tag of a MAC'd token."""
    data = "\n".join(str(f) for f in fields).encode()
    return b64url(hmac.new(key, data, hashlib.sha256).digest()[:24])


def same(a: str, b: str) -> bool:
    """Constant-time equality of two tokens (compared as UTF-8, so any string is safe to compare)."""
    return hmac.compare_digest(a.encode(), b.encode())


class Located(NamedTuple):
    account_id: str
    registration_id: str
    token: str


def locate(token: Any, prefix: str) -> Located | None:
    """The (account, registration) a ``{prefix}_{account}.{registration}.{secret}`` token names, or None
    when it is not one (wrong prefix, malformed ids, a secret shorter than 16 characters, oversize)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not token.startswith(prefix + "_"):
        return None
    parts = token[len(prefix) + 1 :].split(".")
    if len(parts) != 3 or not TOKEN_ID.fullmatch(parts[0]) or not TOKEN_ID.fullmatch(parts[1]) or len(parts[2]) < 16:
        return None
    return Located(parts[0], parts[1], token)


# ---- claim ----------------------------------------------------------------------------------------


def claim_token(key: bytes, account_id: str, registration_id: str) -> str:
    return f"clm_{account_id}.{registration_id}.{mac(key, account_id, registration_id)}"


def verify_claim_token(key: bytes, token: Any) -> Located | Literal[False] | None:
    """The claim token's location if we minted it; None if it is not a claim token at all; False if it
    looks like one but its MAC is wrong (the protocol answers these two differently)."""
    loc = locate(token, "clm")
    if loc is None:
        return None
    return loc if same(claim_token(key, loc.account_id, loc.registration_id), loc.token) else False


def new_attempt_token(account_id: str, registration_id: str) -> str:
    return f"cvt_{account_id}.{registration_id}.{secrets.token_urlsafe(32)}"


def new_user_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(key: bytes, attempt_id: str, code: str) -> str:
    return mac(key, attempt_id, code)


def normalized_code(user_code: Any) -> str:
    """The code as the human saw it, without the grouping they may have read it back with. Anything
    else (not 6 digits after that) is kept as it is, and counts as a wrong code."""
    if not isinstance(user_code, str):
        return ""
    return _CODE_NOISE.sub("", user_code).lower()


# ---- refresh --------------------------------------------------------------------------------------


def new_family() -> str:
    return secrets.token_urlsafe(16)


def refresh_token(key: bytes, account_id: str, registration_id: str, family: str, seq: int) -> str:
    fields = f"{account_id}\n{registration_id}\n{family}\n{seq}".encode()
    tag = b64url(hmac.new(key, fields, hashlib.sha256).digest()[:24])
    return f"art_{account_id}.{registration_id}.{seq}.{tag}"


def locate_refresh(token: Any) -> tuple[str, str, int] | None:
    """(account, registration, seq) named by a well-formed refresh token; None otherwise."""
    ok = isinstance(token, str) and token.startswith("art_") and len(token) < MAX_TOKEN_LENGTH
    parts = token[4:].split(".") if ok else []
    located = len(parts) == 4 and TOKEN_ID.fullmatch(parts[0]) and TOKEN_ID.fullmatch(parts[1])
    if not located or not _SEQ.fullmatch(parts[2]):
        return None
    return parts[0], parts[1], int(parts[2])


# ---- proof of work --------------------------------------------------------------------------------


def _challenge_mac(key: bytes, body: str) -> str:
    return b64url(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def mint_challenge(key: bytes, difficulty: int, expires_at: int) -> str:
    body = f"{CHALLENGE_VERSION}.{secrets.token_urlsafe(16)}.{expires_at}.{difficulty}"
    return f"{body}.{_challenge_mac(key, body)}"


def parse_challenge(key: bytes, challenge: str) -> tuple[str, int, int] | None:
    """(id, expires_at, difficulty) of a challenge we signed, or None if forged or malformed."""
    if len(challenge) > MAX_CHALLENGE_LENGTH or not challenge.isascii():
        return None
    parts = challenge.split(".")
    if len(parts) != 5 or parts[0] != CHALLENGE_VERSION:
        return None
    body, tag = challenge.rsplit(".", 1)
    if not hmac.compare_digest(_challenge_mac(key, body), tag):
        return None
    try:
        return parts[1], int(parts[2]), int(parts[3])
    except ValueError:
        return None


# ---- provider-attested grants ---------------------------------------------------------------------


def registration_id_for(key: bytes, issuer: str, subject: str, audience: str) -> str:
    """Stable per (iss, sub, aud): the same agent subject always lands on the same registration."""
    tag = hmac.new(key, f"{issuer}\n{subject}\n{audience}".encode(), hashlib.sha256)
    return "reg_" + b64url(tag.digest()[:16])
