"""Signing keys, kid = RFC 7638 thumbprint, rotation windows, the server secret and client secret hashes."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import jwt
import pytest

from app.config import ConfigError
from app.keys import (
    KeyRing,
    ensure_keys,
    hash_secret,
    list_keys,
    public_jwk,
    pyjwt_algorithms,
    rotate,
    thumbprint,
    verify_secret,
)

T0 = 1_800_000_000.0
LIFETIME = 3600.0

# RFC 7638 §3.1: the example RSA key (from RFC 7517 appendix A.1) and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjh"
    "Mstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQ"
    "vRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJz"
    "KnqDKgw"
)
RFC7638_E = "AQAB"
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(data_dir: Path, now: float) -> KeyRing:
    return KeyRing.load(data_dir, max_token_lifetime=LIFETIME, now=now)


# ---------------------------------------------------------------------------------------------------
# Thumbprints
# ---------------------------------------------------------------------------------------------------


def test_rfc7638_example_thumbprint() -> None:
    jwk = {"kty": "RSA", "n": RFC7638_N, "e": RFC7638_E}
    assert thumbprint(jwk) == RFC7638_THUMBPRINT


def test_thumbprint_ignores_optional_members() -> None:
    jwk = {"kty": "RSA", "n": RFC7638_N, "e": RFC7638_E, "alg": "RS256", "kid": "2011-04-29", "use": "sig"}
    assert thumbprint(jwk) == RFC7638_THUMBPRINT


def test_ec_thumbprint_hashes_crv_kty_x_y_in_order() -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": "xx", "y": "yy", "kid": "ignored"}
    canonical = b'{"crv":"P-256","kty":"EC","x":"xx","y":"yy"}'
    expected = hashlib.sha256(canonical).digest()
    assert thumbprint(jwk) == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()


# ---------------------------------------------------------------------------------------------------
# Key files
# ---------------------------------------------------------------------------------------------------


def test_ensure_keys_creates_private_files_once(tmp_path: Path) -> None:
    assert ensure_keys(tmp_path, "ES256", now=T0) is True
    keydir = tmp_path / "keys"
    assert mode(keydir) == 0o700
    manifest = json.loads((keydir / "manifest.json").read_text())
    kid = manifest["current"]
    for name in ("secret.key", f"{kid}.pem", "manifest.json"):
        assert mode(keydir / name) == 0o600, name
    assert len((keydir / "secret.key").read_bytes()) == 32
    assert manifest["keys"] == [{"kid": kid, "alg": "ES256", "created_at": T0, "retired_at": None}]
    assert list_keys(tmp_path) == manifest

    before = {p.name: p.read_bytes() for p in keydir.iterdir() if p.is_file()}
    assert ensure_keys(tmp_path, "ES256", now=T0 + 10) is False
    after = {p.name: p.read_bytes() for p in keydir.iterdir() if p.is_file()}
    assert after == before


def test_load_without_keys_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keys"):
        load(tmp_path, T0)


def test_keys_are_reused_across_loads(tmp_path: Path) -> None:
    ensure_keys(tmp_path, "ES256", now=T0)
    first, second = load(tmp_path, T0), load(tmp_path, T0 + 5)
    assert first.current.kid == second.current.kid
    assert first.jwks() == second.jwks()
    assert first.derive("pow") == second.derive("pow")
    token = jwt.encode({"sub": "x"}, first.current.private_key, algorithm="ES256", headers={"kid": first.current.kid})
    assert jwt.decode(token, second.current.public_key, algorithms=["ES256"]) == {"sub": "x"}


def test_kid_is_the_thumbprint_of_the_public_jwk(tmp_path: Path) -> None:
    ensure_keys(tmp_path, "ES256", now=T0)
    ring = load(tmp_path, T0)
    key = ring.current
    assert key.kid == thumbprint(public_jwk(key.private_key))
    jwk = key.jwk()
    assert jwk["kid"] == key.kid
    assert thumbprint(jwk) == key.kid
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in jwk  # public members only
    assert ring.verification_key(key.kid) is key
    assert ring.verification_key("unknown") is None


def test_rs256_is_selectable(tmp_path: Path) -> None:
    assert ensure_keys(tmp_path, "RS256", now=T0) is True
    ring = load(tmp_path, T0)
    key = ring.current
    assert key.alg == "RS256"
    jwk = key.jwk()
    assert (jwk["kty"], jwk["alg"], jwk["e"]) == ("RSA", "RS256", "AQAB")
    assert "d" not in jwk
    assert key.kid == thumbprint(jwk)
    token = jwt.encode({"sub": "x"}, key.private_key, algorithm="RS256")
    assert jwt.decode(token, key.public_key, algorithms=["RS256"]) == {"sub": "x"}
    assert ensure_keys(tmp_path, "RS256", now=T0 + 1) is False


def test_unsupported_alg_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="signing_alg"):
        ensure_keys(tmp_path, "HS256", now=T0)


def test_changing_alg_rotates(tmp_path: Path) -> None:
    ensure_keys(tmp_path, "ES256", now=T0)
    old = load(tmp_path, T0).current.kid
    assert ensure_keys(tmp_path, "RS256", now=T0 + 100) is True
    ring = load(tmp_path, T0 + 100)
    assert ring.current.alg == "RS256"
    assert ring.current.kid != old
    manifest = list_keys(tmp_path)
    retired = {k["kid"]: k["retired_at"] for k in manifest["keys"]}
    assert retired == {old: T0 + 100, ring.current.kid: None}
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old, ring.current.kid}
    assert ensure_keys(tmp_path, "RS256", now=T0 + 200) is False


def test_rotated_key_is_published_until_its_tokens_lapse(tmp_path: Path) -> None:
    ensure_keys(tmp_path, "ES256", now=T0)
    old = load(tmp_path, T0).current.kid
    new = rotate(tmp_path, "ES256", now=T0 + 1000)
    assert new != old
    retired_at = T0 + 1000

    during = load(tmp_path, retired_at + LIFETIME - 0.001)
    assert during.current.kid == new
    assert {k["kid"] for k in during.jwks()["keys"]} == {old, new}
    assert during.verification_key(old) is not None

    after = load(tmp_path, retired_at + LIFETIME)
    assert after.current.kid == new
    assert {k["kid"] for k in after.jwks()["keys"]} == {new}
    assert after.verification_key(old) is None


def test_rotation_keeps_the_server_secret(tmp_path: Path) -> None:
    ensure_keys(tmp_path, "ES256", now=T0)
    before = load(tmp_path, T0).derive("pow")
    rotate(tmp_path, "ES256", now=T0 + 1)
    assert load(tmp_path, T0 + 1).derive("pow") == before


def test_derive_gives_different_keys_per_purpose(tmp_path: Path) -> None:
    ensure_keys(tmp_path, "ES256", now=T0)
    ring = load(tmp_path, T0)
    keys = {purpose: ring.derive(purpose) for purpose in ("pow", "claim", "session", "pow2")}
    assert len(set(keys.values())) == 4
    assert all(len(k) == 32 for k in keys.values())
    assert ring.derive("pow") == keys["pow"]
    secret = (tmp_path / "keys" / "secret.key").read_bytes()
    assert secret not in keys.values()


def test_separate_data_dirs_have_separate_secrets(tmp_path: Path) -> None:
    ensure_keys(tmp_path / "a", "ES256", now=T0)
    ensure_keys(tmp_path / "b", "ES256", now=T0)
    assert load(tmp_path / "a", T0).derive("pow") != load(tmp_path / "b", T0).derive("pow")


def test_short_secret_is_refused(tmp_path: Path) -> None:
    ensure_keys(tmp_path, "ES256", now=T0)
    (tmp_path / "keys" / "secret.key").write_bytes(b"short")
    with pytest.raises(ConfigError, match="shorter than 32 bytes"):
        load(tmp_path, T0)


def test_only_asymmetric_algorithms_verify_our_tokens() -> None:
    algs = pyjwt_algorithms()
    assert set(algs) <= {"ES256", "RS256"}
    assert "ES256" in algs
    assert "none" not in algs
    assert not any(a.startswith("HS") for a in algs)


# ---------------------------------------------------------------------------------------------------
# Client secret hashes
# ---------------------------------------------------------------------------------------------------


def test_hash_secret_round_trip() -> None:
    stored = hash_secret("correct horse")
    assert stored.startswith("scrypt$")
    assert "correct horse" not in stored
    assert verify_secret("correct horse", stored) is True
    assert verify_secret("correct horsf", stored) is False
    assert verify_secret("", stored) is False
    assert hash_secret("correct horse") != stored  # salted


def test_sha256_hex_form() -> None:
    stored = "sha256$" + hashlib.sha256(b"s3cret").hexdigest()
    assert verify_secret("s3cret", stored) is True
    assert verify_secret("s3cret ", stored) is False


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "s3cret",
        "sha256$",
        "sha256$nothex",
        "sha256$é",
        "md5$" + hashlib.md5(b"s3cret").hexdigest(),  # noqa: S324 - an unsupported scheme on purpose
        "scrypt$",
        "scrypt$16384$8$1$onlysalt",
        "scrypt$x$8$1$c2FsdA$ZGlnZXN0",
        "scrypt$3$8$1$c2FsdA$ZGlnZXN0",
        "scrypt$16384$8$1$c2FsdA$ZGlnZXN0",
        "scrypt$16384$8$1$$",
        "scrypt$16384$8$1$é$é",
    ],
)
def test_garbage_stored_values_are_false(stored: str) -> None:
    assert verify_secret("s3cret", stored) is False
