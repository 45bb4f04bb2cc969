"""The test identity provider itself: real HTTP, public-only JWKS, rotation, and tokens that verify (or
are hostile in exactly the intended way)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest

from app.keys import thumbprint
from tests.provider import (
    ID_JAG_TYP,
    REVOKED_URIS,
    SET_TYP,
    TestProvider,
    es256_provider_fixture,  # noqa: F401 (fixture)
    new_private_key,
    provider_fixture,  # noqa: F401 (fixture)
)

AUD = "http://127.0.0.1:8000"
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    def dec(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    h, p, s = token.split(".")
    return json.loads(dec(h)), json.loads(dec(p)), dec(s)


def _verify(provider: TestProvider, token: str, *, aud: str = AUD, check_issuer: bool = True) -> dict[str, Any]:
    """Verify against the JWKS fetched over HTTP, as a relying party would."""
    jwks = httpx.get(provider.jwks_uri).json()
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    key = jwt.PyJWK(jwk)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=[jwk["alg"]], audience=aud, issuer=provider.issuer if check_issuer else None
    )
    return claims


@pytest.fixture(params=["provider", "es256_provider"])
def any_provider(request: pytest.FixtureRequest) -> TestProvider:
    idp: TestProvider = request.getfixturevalue(request.param)
    return idp


# -- JWKS over HTTP ---------------------------------------------------------------------------------


def test_jwks_is_public_only_and_well_formed(any_provider: TestProvider) -> None:
    r = httpx.get(any_provider.jwks_uri)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    (jwk,) = r.json()["keys"]
    assert not PRIVATE_JWK_MEMBERS & jwk.keys()
    assert jwk["use"] == "sig"
    assert jwk["alg"] == any_provider.alg
    assert jwk["kid"] == any_provider.kid == thumbprint(jwk)
    expected = {"RS256": {"kty", "n", "e"}, "ES256": {"kty", "crv", "x", "y"}}[any_provider.alg]
    assert set(jwk) == expected | {"kid", "alg", "use"}


def test_issuer_and_jwks_uri(provider: TestProvider) -> None:
    assert provider.issuer == f"http://127.0.0.1:{provider.port}"
    assert provider.jwks_uri == provider.issuer + "/.well-known/jwks.json"


def test_issuer_with_path_serves_jwks_under_it() -> None:
    with TestProvider(path="/tenants/acme/") as idp:
        assert idp.issuer == f"http://127.0.0.1:{idp.port}/tenants/acme"
        assert idp.jwks_uri == f"{idp.issuer}/.well-known/jwks.json"
        assert httpx.get(idp.jwks_uri).json()["keys"][0]["kid"] == idp.kid
        assert httpx.get(idp.url("/.well-known/jwks.json")).status_code == 404


def test_cache_control_is_what_the_test_set(provider: TestProvider) -> None:
    assert httpx.get(provider.jwks_uri).headers["cache-control"] == "public, max-age=300"
    provider.cache_control = "max-age=5, must-revalidate"
    assert httpx.get(provider.jwks_uri).headers["cache-control"] == "max-age=5, must-revalidate"
    provider.cache_control = None
    assert "cache-control" not in httpx.get(provider.jwks_uri).headers


def test_jwks_requests_are_counted_even_concurrently(provider: TestProvider) -> None:
    assert provider.jwks_requests == 0
    httpx.get(provider.jwks_uri)
    httpx.get(provider.url("/elsewhere"))
    assert provider.jwks_requests == 1
    assert provider.hits("/elsewhere") == 1
    with httpx.Client() as client, ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: client.get(provider.jwks_uri + "?n=1").status_code, range(40)))
    assert statuses == [200] * 40
    assert provider.jwks_requests == 41
    assert provider.requests[-1].target == provider.jwks_path + "?n=1"


# -- keys ------------------------------------------------------------------------------------------


def test_rotate_key_keeps_old_key_published(provider: TestProvider) -> None:
    old_kid = provider.kid
    old_token = provider.mint_id_jag("alice", aud=AUD)
    new_kid = provider.rotate_key()
    assert new_kid != old_kid
    assert provider.kid == new_kid
    kids = [k["kid"] for k in httpx.get(provider.jwks_uri).json()["keys"]]
    assert kids == [old_kid, new_kid]
    assert _verify(provider, old_token)["sub"] == "alice"  # old tokens still verify
    assert jwt.get_unverified_header(provider.mint_id_jag("bob", aud=AUD))["kid"] == new_kid


def test_rotate_key_can_drop_old_keys_and_change_alg(provider: TestProvider) -> None:
    old_kid = provider.kid
    old_token = provider.mint_id_jag("alice", aud=AUD)
    new_kid = provider.rotate_key("ES256", keep_old=False)
    (jwk,) = httpx.get(provider.jwks_uri).json()["keys"]
    assert jwk["kid"] == new_kid != old_kid
    assert jwk["alg"] == "ES256"
    with pytest.raises(StopIteration):  # the old kid is no longer published
        _verify(provider, old_token)
    token = provider.mint_id_jag("bob", aud=AUD)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert _verify(provider, token)["sub"] == "bob"


def test_drop_key_unpublishes_a_retired_key(provider: TestProvider) -> None:
    old_kid = provider.kid
    provider.rotate_key()
    provider.drop_key(old_kid)
    assert old_kid not in {k["kid"] for k in httpx.get(provider.jwks_uri).json()["keys"]}
    with pytest.raises(ValueError, match="current"):
        provider.drop_key(provider.kid)


# -- ID-JAGs ---------------------------------------------------------------------------------------


def test_minted_id_jag_verifies_with_pyjwkclient(any_provider: TestProvider) -> None:
    token = any_provider.mint_id_jag(
        "user-42",
        aud=AUD,
        email="Alice@Example.com",
        scope="openid email",
        amr=["pwd", "mfa"],
        client_id="https://agent.example/client.json",
    )
    signing_key = jwt.PyJWKClient(any_provider.jwks_uri, cache_jwk_set=False).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=[any_provider.alg], audience=AUD, issuer=any_provider.issuer)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": any_provider.alg, "kid": any_provider.kid, "typ": ID_JAG_TYP}
    assert claims["sub"] == "user-42"
    assert claims["iss"] == any_provider.issuer
    assert claims["client_id"] == "https://agent.example/client.json"
    assert claims["email"] == "Alice@Example.com"
    assert claims["email_verified"] is True
    assert claims["scope"] == "openid email"
    assert claims["amr"] == ["pwd", "mfa"]
    assert claims["exp"] == claims["iat"] + 300
    assert abs(claims["iat"] - time.time()) < 60
    assert abs(claims["auth_time"] - time.time()) < 60
    assert any_provider.jwks_requests == 1


def test_id_jag_defaults_and_explicit_values(provider: TestProvider) -> None:
    a = _segments(provider.mint_id_jag("u", aud=AUD))[1]
    b = _segments(provider.mint_id_jag("u", aud=AUD))[1]
    assert a["jti"] != b["jti"]
    assert a["client_id"] == "agent-cli"
    assert not {"email", "email_verified", "phone_number", "scope", "amr"} & a.keys()

    token = provider.mint_id_jag(
        "u",
        aud=[AUD],
        iat=1_000,
        exp=2_000,
        auth_time=900,
        jti="fixed",
        email="u@example.com",
        email_verified=False,
        phone_number="+15555550100",
        issuer="https://evil.example",
        extra_claims={"cnf": {"jkt": "abc"}},
    )
    claims = _segments(token)[1]
    assert claims["iat"] == 1_000
    assert claims["exp"] == 2_000
    assert claims["auth_time"] == 900
    assert claims["jti"] == "fixed"
    assert claims["aud"] == [AUD]
    assert claims["email_verified"] is False
    assert claims["phone_number"] == "+15555550100"
    assert claims["phone_number_verified"] is True
    assert claims["iss"] == "https://evil.example"
    assert claims["cnf"] == {"jkt": "abc"}
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(provider, token, check_issuer=False)


def test_drop_claims_typ_none_and_extra_headers(provider: TestProvider) -> None:
    token = provider.mint_id_jag(
        "u",
        aud=AUD,
        email="u@example.com",
        drop_claims=("auth_time", "jti", "email_verified"),
        typ=None,
        headers={"jku": "http://attacker.example/jwks", "x5u": "http://attacker.example/cert", "jwk": {"kty": "EC"}},
    )
    header, claims, _ = _segments(token)
    assert "typ" not in header
    assert header["jku"] == "http://attacker.example/jwks"
    assert header["x5u"] == "http://attacker.example/cert"
    assert header["jwk"] == {"kty": "EC"}
    assert not {"auth_time", "jti", "email_verified"} & claims.keys()
    assert claims["email"] == "u@example.com"
    assert _verify(provider, token)["sub"] == "u"  # still validly signed

    no_kid = provider.mint_id_jag("u", aud=AUD, headers={"kid": None}, typ="at+jwt")
    header = _segments(no_kid)[0]
    assert "kid" not in header
    assert header["typ"] == "at+jwt"


def test_foreign_key_with_current_kid_fails_verification(provider: TestProvider) -> None:
    token = provider.mint_id_jag("u", aud=AUD, key=new_private_key("RS256"))
    assert jwt.get_unverified_header(token)["kid"] == provider.kid
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(provider, token)
    unknown = provider.mint_id_jag("u", aud=AUD, kid="no-such-kid")
    assert jwt.get_unverified_header(unknown)["kid"] == "no-such-kid"


def test_hs256_with_public_key_is_the_confusion_attack(provider: TestProvider) -> None:
    claims = provider.id_jag_claims("mallory", aud=AUD, email="m@example.com")
    token = provider.hs256_with_public_key(claims)
    header, payload, signature = _segments(token)
    assert header == {"alg": "HS256", "kid": provider.kid, "typ": ID_JAG_TYP}
    assert payload == claims
    pem = provider.current_key.public_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    signing_input = token.rsplit(".", 1)[0].encode()
    assert hmac.compare_digest(signature, hmac.new(pem, signing_input, hashlib.sha256).digest())
    with pytest.raises(jwt.InvalidAlgorithmError):  # a correct verifier refuses it
        _verify(provider, token)


def test_unsigned_token_has_alg_none_and_no_signature(provider: TestProvider) -> None:
    claims = provider.id_jag_claims("mallory", aud=AUD)
    token = provider.unsigned(claims)
    header, payload, signature = _segments(token)
    assert header == {"alg": "none", "typ": ID_JAG_TYP, "kid": provider.kid}
    assert payload == claims
    assert signature == b""
    assert token.endswith(".")
    variant = _segments(provider.unsigned(claims, {"alg": "nOnE", "typ": None}))[0]
    assert variant["alg"] == "nOnE"
    assert variant["typ"] is None
    with pytest.raises(jwt.InvalidAlgorithmError):
        _verify(provider, token)


def test_oversized_is_big_and_validly_signed(provider: TestProvider) -> None:
    token = provider.oversized(64 * 1024, aud=AUD, email="big@example.com")
    assert 64 * 1024 <= len(token) < 64 * 1024 + 64
    claims = _verify(provider, token)
    assert len(claims["pad"]) > 40_000
    assert claims["email"] == "big@example.com"
    assert jwt.get_unverified_header(token)["typ"] == ID_JAG_TYP


# -- served documents ------------------------------------------------------------------------------


def test_serve_json_and_bytes(provider: TestProvider) -> None:
    doc = {"client_id": provider.url("/clients/agent.json"), "client_name": "Agent"}
    url = provider.serve_json("/clients/agent.json", doc)
    assert url == provider.url("/clients/agent.json")
    r = httpx.get(url)
    assert (r.status_code, r.headers["content-type"], r.json()) == (200, "application/json", doc)

    provider.serve_json("/clients/gone.json", {"error": "gone"}, status=410, content_type="text/plain")
    r = httpx.get(provider.url("/clients/gone.json"))
    assert (r.status_code, r.headers["content-type"]) == (410, "text/plain")

    garbage = b"\x00\xff" * 50_000
    provider.serve_bytes("/clients/big.json", garbage, "application/json")
    r = httpx.get(provider.url("/clients/big.json"))
    assert r.content == garbage
    assert r.headers["content-length"] == str(len(garbage))

    assert httpx.get(provider.url("/nothing-here")).status_code == 404
    assert provider.hits("/clients/agent.json") == 1
    assert provider.hits("/clients/big.json") == 1
    assert provider.hits("/nothing-here") == 1


def test_serve_json_can_override_the_jwks(provider: TestProvider) -> None:
    provider.serve_json(provider.jwks_path, {"error": "down"}, status=503)
    assert httpx.get(provider.jwks_uri).status_code == 503
    provider.unserve(provider.jwks_path)
    assert httpx.get(provider.jwks_uri).json()["keys"][0]["kid"] == provider.kid
    assert provider.jwks_requests == 2


def test_delayed_document_times_the_client_out_and_stop_is_prompt() -> None:
    idp = TestProvider().start()
    try:
        url = idp.serve_json("/clients/slow.json", {"client_id": "x"}, delay=30.0)
        with httpx.Client(timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
            client.get(url)
        assert idp.hits("/clients/slow.json") == 1
    finally:
        started = time.monotonic()
        idp.stop()
    assert time.monotonic() - started < 5  # the waiting handler was woken, not slept out
    assert not idp.running


# -- SETs ------------------------------------------------------------------------------------------


def test_revocation_set_carries_event_and_subject(any_provider: TestProvider) -> None:
    token = any_provider.revocation_set("user-42", aud=AUD, jti="set-1", iat=1_700_000_000)
    header, claims, _ = _segments(token)
    assert header["typ"] == SET_TYP
    assert header["kid"] == any_provider.kid
    assert claims == {
        "iss": any_provider.issuer,
        "aud": AUD,
        "iat": 1_700_000_000,
        "jti": "set-1",
        "sub": "user-42",
        "events": {REVOKED_URIS[0]: {"subject": {"format": "iss_sub", "iss": any_provider.issuer, "sub": "user-42"}}},
    }
    assert _verify(any_provider, token) == claims

    other = _segments(any_provider.revocation_set("user-42", aud=AUD, uri=REVOKED_URIS[1]))[1]
    assert list(other["events"]) == [REVOKED_URIS[1]]


def test_mint_set_generic(provider: TestProvider) -> None:
    unknown = "https://schemas.example/events/unknown"
    token = provider.mint_set({unknown: {"x": 1}}, aud=AUD, typ="JWT")
    header, claims, _ = _segments(token)
    assert header["typ"] == "JWT"
    assert claims["events"] == {unknown: {"x": 1}}
    assert "sub" not in claims
    assert isinstance(claims["jti"], str)
    assert abs(claims["iat"] - time.time()) < 60
    both = _segments(provider.mint_set({unknown: {}}, aud=AUD, sub="s", revocation_of="s"))[1]
    assert set(both["events"]) == {unknown, REVOKED_URIS[0]}
    assert both["sub"] == "s"


# -- lifecycle -------------------------------------------------------------------------------------


def test_context_manager_shuts_down_cleanly() -> None:
    before = threading.active_count()
    with TestProvider(alg="ES256") as idp:
        assert idp.running
        uri = idp.jwks_uri
        assert httpx.get(uri).status_code == 200
    assert not idp.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(uri)
    idp.stop()  # idempotent
    assert threading.active_count() == before


def test_not_collected_as_a_test_class() -> None:
    assert TestProvider.__test__ is False
