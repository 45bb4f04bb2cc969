"""Failure paths of our own JWTs: tampered, expired, wrong typ, alg none, alg confusion, and the two
token types presented in each other's place."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.flows.issue import TYP_ACCESS, TYP_IDENTITY
from app.flows.issue import sign as mint  # signs without the issuer's verified-token cache

pytestmark = pytest.mark.anyio


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, object], dict[str, object], str]:
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p))), s


async def _expect_api_401(agent, token: str, fragment: str) -> None:
    r = await agent.api("GET", "/notes", token)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token"
    assert fragment in r.json()["error_description"]
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert 'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/api"' in challenge


async def _expect_grant_400(agent, assertion: str, fragment: str) -> None:
    body = await agent.token(assertion, expect=400)
    assert body["error"] == "invalid_grant"
    assert fragment in body["error_description"]


async def test_valid_token_works_then_tampered_payload_fails(harness):
    agent = harness.agent()
    _, token = await agent.start()
    assert (await agent.api("GET", "/notes", token)).status_code == 200
    _header, payload, sig = _parts(token)
    payload["scope"] = "notes:read notes:write notes:delete"
    forged = f"{token.split('.')[0]}.{_b64(payload)}.{sig}"
    await _expect_api_401(agent, forged, "signature")
    r = await agent.api("DELETE", "/notes/x", forged)
    assert r.status_code == 401


async def test_tampered_signature_fails(harness):
    agent = harness.agent()
    _, token = await agent.start()
    h, p, s = token.split(".")
    flipped = s[:-4] + ("AAAA" if s[-4:] != "AAAA" else "BBBB")
    await _expect_api_401(agent, f"{h}.{p}.{flipped}", "signature")


async def test_expired_access_token_and_assertion(harness):
    agent = harness.agent()
    reg, token = await agent.start()
    harness.clock.advance(harness.settings.access_token_ttl_seconds)
    await _expect_api_401(agent, token, "expired")
    # The assertion lives as long as the account: still exchangeable now ...
    fresh = await agent.token(reg["identity"]["assertion"])
    assert (await agent.api("GET", "/notes", fresh["access_token"])).status_code == 200
    # ... and refused once the account's lifetime is over.
    harness.clock.advance(harness.settings.anonymous_ttl_seconds)
    await _expect_grant_400(agent, reg["identity"]["assertion"], "expired")


async def test_access_token_never_outlives_the_account(harness_factory):
    async with harness_factory(anonymous_ttl_seconds=300, access_token_ttl_seconds=600) as h:
        agent = h.agent()
        reg = await agent.register()
        tok = await agent.token(reg["identity"]["assertion"])
        assert tok["expires_in"] == 300
        h.clock.advance(200)
        tok = await agent.token(reg["identity"]["assertion"])
        assert tok["expires_in"] == 100
        claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 100


async def test_wrong_typ_is_refused_both_ways(harness):
    agent = harness.agent()
    reg, token = await agent.start()
    ctx = harness.ctx
    claims = jwt.decode(token, options={"verify_signature": False})
    for typ in ("JWT", "jwt", "oauth-id-jag+jwt", "secevent+jwt"):
        await _expect_api_401(agent, mint(ctx, typ, claims), "not of type at+jwt")
    assertion_claims = jwt.decode(reg["identity"]["assertion"], options={"verify_signature": False})
    for typ in ("JWT", TYP_ACCESS, "oauth-id-jag+jwt"):
        await _expect_grant_400(agent, mint(ctx, typ, assertion_claims), "not of type")
    # typ compares case-insensitively (RFC 7515 §4.1.9), so the upper-case form of ours works
    upper = mint(ctx, TYP_ACCESS.upper(), claims)
    assert (await agent.api("GET", "/notes", upper)).status_code == 200


async def test_identity_assertion_is_not_an_access_token_and_vice_versa(harness):
    agent = harness.agent()
    reg, token = await agent.start()
    await _expect_api_401(agent, reg["identity"]["assertion"], "not of type at+jwt")
    await _expect_grant_400(agent, token, f"not of type {TYP_IDENTITY}")
    # Same typ but the other's audience: an identity-typed token whose aud is the resource fails too.
    claims = jwt.decode(reg["identity"]["assertion"], options={"verify_signature": False})
    claims["aud"] = harness.settings.resource
    await _expect_grant_400(agent, mint(harness.ctx, TYP_IDENTITY, claims), "audience")
    at_claims = jwt.decode(token, options={"verify_signature": False})
    at_claims["aud"] = harness.settings.issuer
    await _expect_api_401(agent, mint(harness.ctx, TYP_ACCESS, at_claims), "audience")


async def test_alg_none_and_alg_confusion_are_refused(harness):
    agent = harness.agent()
    reg, token = await agent.start()
    header, payload, _ = _parts(token)
    for alg in ("none", "None", "NONE"):
        unsigned = f"{_b64({**header, 'alg': alg})}.{_b64(payload)}."
        await _expect_api_401(agent, unsigned, "not signed by a key of this service")
    # HS256 keyed with our public key (the classic RS/ES → HS confusion).
    pub_pem = harness.ctx.keys.current.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = {**header, "alg": "HS256"}
    signing_input = f"{_b64(hs_header)}.{_b64(payload)}".encode()
    mac = base64.urlsafe_b64encode(hmac.new(pub_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    await _expect_api_401(agent, signing_input.decode() + "." + mac.decode(), "not signed by a key of this service")
    _, a_payload, _ = _parts(reg["identity"]["assertion"])
    unsigned_assertion = f"{_b64({'alg': 'none', 'typ': TYP_IDENTITY})}.{_b64(a_payload)}."
    await _expect_grant_400(agent, unsigned_assertion, "not signed by a key of this service")


async def test_foreign_key_and_unknown_kid_are_refused(harness):
    agent = harness.agent()
    _, token = await agent.start()
    header, payload, _ = _parts(token)
    stranger = ec.generate_private_key(ec.SECP256R1())
    same_kid = jwt.encode(payload, stranger, algorithm="ES256", headers={"typ": TYP_ACCESS, "kid": header["kid"]})
    await _expect_api_401(agent, same_kid, "signature")
    other_kid = jwt.encode(payload, stranger, algorithm="ES256", headers={"typ": TYP_ACCESS, "kid": "nope"})
    await _expect_api_401(agent, other_kid, "not signed by a key of this service")
    no_kid = jwt.encode(payload, stranger, algorithm="ES256", headers={"typ": TYP_ACCESS})
    await _expect_api_401(agent, no_kid, "not signed by a key of this service")


async def test_wrong_issuer_missing_claims_and_future_iat(harness):
    agent = harness.agent()
    _, token = await agent.start()
    claims = jwt.decode(token, options={"verify_signature": False})
    ctx = harness.ctx
    await _expect_api_401(agent, mint(ctx, TYP_ACCESS, {**claims, "iss": "http://127.0.0.1:9999"}), "another issuer")
    for missing in ("jti", "exp", "sub"):
        partial = {k: v for k, v in claims.items() if k != missing}
        await _expect_api_401(agent, mint(ctx, TYP_ACCESS, partial), f"lacks the {missing} claim")
    future = {**claims, "iat": claims["iat"] + 3600, "exp": claims["exp"] + 3600}
    await _expect_api_401(agent, mint(ctx, TYP_ACCESS, future), "in the future")
    await _expect_api_401(agent, "not-a-jwt", "well-formed")


async def test_token_for_an_older_generation_or_other_account_is_refused(harness):
    agent = harness.agent()
    _reg_a, token_a = await agent.start()
    reg_b, _ = await agent.start()
    claims = jwt.decode(token_a, options={"verify_signature": False})
    # A validly signed token that pairs account A's registration with account B's subject.
    mixed = mint(harness.ctx, TYP_ACCESS, {**claims, "sub": reg_b["account"]["id"]})
    await _expect_api_401(agent, mixed, "revoked")
    stale = mint(harness.ctx, TYP_ACCESS, {**claims, "gen": claims["gen"] + 1})
    await _expect_api_401(agent, stale, "revoked")


async def test_token_endpoint_errors(harness):
    agent = harness.agent()
    reg = await agent.register()
    url = f"{harness.settings.issuer}/oauth2/token"
    c = harness.client
    r = await c.post(url, data={"assertion": reg["identity"]["assertion"]})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = await c.post(url, data={"grant_type": "client_credentials"})
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
    r = await c.post(url, data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = await c.post(url, json={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"})
    assert (r.status_code, r.json()["error"]) == (415, "unsupported_media_type")
    r = await c.post(
        url,
        content=b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&grant_type=x&assertion=a",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    assert "more than once" in r.json()["error_description"]
    body = await agent.token(reg["identity"]["assertion"], expect=400, resource="https://elsewhere.example/api")
    assert body["error"] == "invalid_target"
    body = await agent.token(reg["identity"]["assertion"], expect=400, scope="notes:delete")
    assert body["error"] == "invalid_scope"
    narrowed = await agent.token(reg["identity"]["assertion"], scope="notes:read", resource=harness.settings.resource)
    assert narrowed["scope"] == "notes:read"
    r = await agent.api("POST", "/notes", narrowed["access_token"], json={"text": "x"})
    assert (r.status_code, r.json()["error"]) == (403, "insufficient_scope")
    for resp_headers in [(await c.post(url, data={"grant_type": "x"})).headers]:
        assert resp_headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("suffix", "accepted"),
    [
        ("", True),
        ("/notes", True),
        ("/notes/note_1?x=1", True),
        ("/", True),
        ("s", False),  # /apis is not below /api: a path-segment boundary
        ("/../admin", False),
        ("/%2e%2e/admin", False),
        ("/notes#frag", False),
        ("/./notes", False),
    ],
)
async def test_resource_at_or_below_the_protected_resource(harness, suffix: str, accepted: bool):
    """Revision 2 (RFC 8707 §2): a resource below ours at a path-segment boundary names ours; the
    token's aud is always the resource's own identifier."""
    agent = harness.agent()
    reg = await agent.register()
    resource = harness.settings.resource + suffix
    if not accepted:
        body = await agent.token(reg["identity"]["assertion"], expect=400, resource=resource)
        assert body["error"] == "invalid_target"
        return
    issued = await agent.token(reg["identity"]["assertion"], resource=resource)
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    assert claims["aud"] == harness.settings.resource


async def test_our_es256_tokens_are_what_pyjwt_writes_and_verifies(harness):
    """sign() writes ES256 itself (app/flows/issue.py): the same header and claims as PyJWT, a raw R||S
    signature (RFC 7518 §3.4) that PyJWT and the public JWKS key verify, and nothing verifies once changed."""
    ctx = harness.ctx
    key = ctx.keys.current
    assert key.alg == "ES256"
    claims = {"iss": ctx.settings.issuer, "sub": "acct_x", "aud": "https://rs", "iat": 1, "exp": 2, "scope": "a b"}
    token = mint(ctx, TYP_ACCESS, claims)
    reference = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"typ": TYP_ACCESS, "kid": key.kid})
    assert token.split(".")[:2] == reference.split(".")[:2]
    assert len(base64.urlsafe_b64decode(token.split(".")[2] + "==")) == 64
    public = jwt.PyJWK(key.jwk()).key
    options = {"verify_exp": False, "verify_iat": False}
    assert jwt.decode(token, public, algorithms=["ES256"], audience="https://rs", options=options) == claims
    h, p, s = token.split(".")
    flipped = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{h}.{p}.{flipped}", public, algorithms=["ES256"], audience="https://rs", options=options)
