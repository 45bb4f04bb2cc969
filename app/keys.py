"""Signing keys and the server secret, kept in the data dir.

Layout of ``{data_dir}/keys`` (0700):
  ``manifest.json``      which keys exist, which one signs, when the others were retired
  ``<kid>.pem``          a PKCS#8 private key (0600)
  ``secret.key``         32 random bytes (0600); purpose keys (proof-of-work MAC, ...) derive from it

``kid`` is the RFC 7638 JWK thumbprint. The JWKS publishes the current key and every retired key
that can still have a valid token out there (retired less than ``max_token_lifetime`` ago).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.config import ConfigError

SUPPORTED_ALGS = ("ES256", "RS256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(n: int, length: int | None = None) -> bytes:
    return n.to_bytes(length or max(1, (n.bit_length() + 7) // 8), "big")


def public_jwk(private_key: Any) -> dict[str, str]:
    """The public JWK members that RFC 7638 §3.2 hashes (and nothing else)."""
    pub = private_key.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        return {"crv": "P-256", "kty": "EC", "x": b64url(_int_bytes(nums.x, 32)), "y": b64url(_int_bytes(nums.y, 32))}
    if isinstance(pub, rsa.RSAPublicKey):
        nums_r = pub.public_numbers()
        return {"e": b64url(_int_bytes(nums_r.e)), "kty": "RSA", "n": b64url(_int_bytes(nums_r.n))}
    raise TypeError("unsupported key type")


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 §3: SHA-256 over the required members, lexicographic order, no whitespace."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private_key: Any  # a loaded cryptography key object: never re-parse PEM on the hot path
    created_at: float
    retired_at: float | None

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()

    def jwk(self) -> dict[str, str]:
        return {**public_jwk(self.private_key), "kid": self.kid, "alg": self.alg, "use": "sig"}


class KeyRing:
    """The keys one process uses. Reload with ``KeyRing.load`` when the manifest changes (rotation)."""

    def __init__(self, keys: list[SigningKey], current_kid: str, secret: bytes, manifest_mtime: float) -> None:
        self.keys = {k.kid: k for k in keys}
        self.current = self.keys[current_kid]
        self._secret = secret
        self._derived: dict[str, bytes] = {}  # per purpose: the ring (and its secret) never changes
        self.manifest_mtime = manifest_mtime

    def derive(self, purpose: str) -> bytes:
        """A purpose-bound key from the server secret, so one leaked MAC key exposes nothing else."""
        derived = self._derived.get(purpose)
        if derived is None:
            derived = self._derived[purpose] = hmac.new(
                self._secret, b"authmd/" + purpose.encode(), hashlib.sha256
            ).digest()
        return derived

    def verification_key(self, kid: str) -> SigningKey | None:
        return self.keys.get(kid)

    def published(self) -> list[SigningKey]:
        return list(self.keys.values())

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.published()]}

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str], *, max_token_lifetime: float, now: float | None = None) -> KeyRing:
        """Load the keys that may still verify a live token; retired-and-lapsed keys are left out."""
        keydir = Path(data_dir) / "keys"
        manifest_path = keydir / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
            mtime = manifest_path.stat().st_mtime
        except FileNotFoundError as exc:
            raise ConfigError(f"no signing keys in {keydir}; run `authmd serve` or `authmd keys init`") from exc
        now = time.time() if now is None else now
        keys: list[SigningKey] = []
        for entry in manifest["keys"]:
            retired = entry.get("retired_at")
            if retired is not None and retired + max_token_lifetime <= now and entry["kid"] != manifest["current"]:
                continue
            pem = (keydir / f"{entry['kid']}.pem").read_bytes()
            private = serialization.load_pem_private_key(pem, password=None)
            keys.append(SigningKey(entry["kid"], entry["alg"], private, entry["created_at"], retired))
        secret = (keydir / "secret.key").read_bytes()
        if len(secret) < 32:
            raise ConfigError(f"{keydir / 'secret.key'} is shorter than 32 bytes")
        return cls(keys, manifest["current"], secret, mtime)


# ---------------------------------------------------------------------------------------------------
# Key files: creation and rotation (serialised across processes with an flock)
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(keydir: Path) -> Iterator[None]:
    keydir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(keydir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_private(path: Path, data: bytes) -> None:
    # O_EXCL + 0600 from birth: the key is never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_manifest(keydir: Path, manifest: dict[str, Any]) -> None:
    tmp = keydir / "manifest.json.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    _write_private(tmp, json.dumps(manifest, indent=2).encode())
    os.replace(tmp, keydir / "manifest.json")


def _new_key(alg: str, keydir: Path, now: float) -> dict[str, Any]:
    if alg == "ES256":
        private: Any = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise ConfigError(f"signing_alg: {alg!r} is not one of {SUPPORTED_ALGS}")
    kid = thumbprint(public_jwk(private))
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(keydir / f"{kid}.pem", pem)
    return {"kid": kid, "alg": alg, "created_at": now, "retired_at": None}


def ensure_keys(data_dir: str | os.PathLike[str], alg: str, now: float | None = None) -> bool:
    """Create the key directory on first start; rotate when the configured algorithm changed.

    Returns True when a key was created. Safe to call from several processes at once.
    """
    keydir = Path(data_dir) / "keys"
    now = time.time() if now is None else now
    with _locked(keydir):
        if not (keydir / "secret.key").exists():
            _write_private(keydir / "secret.key", secrets.token_bytes(32))
        manifest_path = keydir / "manifest.json"
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            current = next(k for k in manifest["keys"] if k["kid"] == manifest["current"])
            if current["alg"] == alg:
                return False
            return _rotate_locked(keydir, manifest, alg, now) is not None
        entry = _new_key(alg, keydir, now)
        _write_manifest(keydir, {"current": entry["kid"], "keys": [entry]})
        return True


def rotate(data_dir: str | os.PathLike[str], alg: str, now: float | None = None) -> str:
    """Make a new key current; the old one stays published until its tokens can no longer be valid."""
    keydir = Path(data_dir) / "keys"
    now = time.time() if now is None else now
    with _locked(keydir):
        manifest = json.loads((keydir / "manifest.json").read_text())
        return _rotate_locked(keydir, manifest, alg, now)


def _rotate_locked(keydir: Path, manifest: dict[str, Any], alg: str, now: float) -> str:
    entry = _new_key(alg, keydir, now)
    for k in manifest["keys"]:
        if k["kid"] == manifest["current"]:
            k["retired_at"] = now
    manifest["keys"].append(entry)
    manifest["current"] = entry["kid"]
    _write_manifest(keydir, manifest)
    return str(entry["kid"])


def list_keys(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads((Path(data_dir) / "keys" / "manifest.json").read_text())  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------------
# Secret hashes for configured clients (introspection): the TOML holds a hash, never the secret.
# ---------------------------------------------------------------------------------------------------

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT, dklen=32)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64url(salt)}${b64url(digest)}"


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of a presented secret against ``scrypt$n$r$p$salt$hash`` or ``sha256$hex``."""
    try:
        scheme, _, rest = stored.partition("$")
        if scheme == "sha256":
            return hmac.compare_digest(hashlib.sha256(secret.encode()).hexdigest(), rest)
        if scheme == "scrypt":
            n, r, p, salt, digest = rest.split("$")
            got = hashlib.scrypt(secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32)
            return hmac.compare_digest(got, _unb64(digest))
    except (ValueError, TypeError):
        return False
    return False


def pyjwt_algorithms() -> list[str]:
    """The only algorithms our own tokens may carry (RFC 8725 §3.1: never `none`, never HMAC)."""
    return [a for a in SUPPORTED_ALGS if a in jwt.algorithms.get_default_algorithms()]
