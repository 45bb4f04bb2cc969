"""ID-token validation (OpenID Connect Core §3.1.3.7) against a real JWKS server, one failure at a
time, and the ID-JAG paths of the claim: the account-linking step-up and the claim by ID-JAG."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.clock import ManualClock
from app.errors import AuthError
from app.flows.signin import safe_return_to, validate_id_token
from tests.flows.test_idjag import ISSUER, URN, attested, exchange, register
from tests.helpers import DevHuman
from tests.provider import new_private_key

pytestmark = pytest.mark.anyio
CLIENT = "authmd-test"
NONCE = "n-0S6_WzA2Mj"


def claims(provider: Any, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": "person-1",
        "aud": CLIENT,
        "exp": now + 300,
        "iat": now,
        "nonce": NONCE,
        "email": "ada@example.com",
        "email_verified": True,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture
async def oidc_ctx(harness_factory, provider):
    async with harness_factory(
        clock=ManualClock(time.time()),
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT,
        oidc_client_secret="s3cret",
    ) as h:
        yield h.ctx, {"jwks_uri": provider.jwks_uri, "id_token_signing_alg_values_supported": ["RS256", "ES256"]}


async def test_a_valid_id_token_passes(oidc_ctx, provider):
    ctx, meta = oidc_ctx
    got = await validate_id_token(ctx, meta, provider.sign(claims(provider), typ="JWT"), NONCE)
    assert got["sub"] == "person-1" and got["email"] == "ada@example.com"
    both = claims(provider, aud=[CLIENT, "other"], azp=CLIENT)
    assert (await validate_id_token(ctx, meta, provider.sign(both, typ="JWT"), NONCE))["azp"] == CLIENT


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("nonce mismatch (11)", {"nonce": "another"}),
        ("nonce missing (11)", {"nonce": None}),
        ("wrong issuer (2)", {"iss": "http://127.0.0.1:1/other"}),
        ("wrong audience (3)", {"aud": "someone-else"}),
        ("several audiences without azp (4)", {"aud": [CLIENT, "other"]}),
        ("azp of another client (5)", {"azp": "other"}),
        ("expired (9)", {"exp": int(time.time()) - 3600}),
        ("issued in the future (10)", {"iat": int(time.time()) + 3600}),
        ("no subject", {"sub": ""}),
    ],
)
async def test_each_id_token_defect_is_refused(oidc_ctx, provider, case, change):
    ctx, meta = oidc_ctx
    with pytest.raises(AuthError) as err:
        await validate_id_token(ctx, meta, provider.sign(claims(provider, **change), typ="JWT"), NONCE)
    assert err.value.code == "invalid_grant", case


async def test_forged_signatures_and_algorithms_are_refused(oidc_ctx, provider):
    ctx, meta = oidc_ctx
    good = claims(provider)
    stranger = new_private_key("RS256")
    forged = [
        provider.sign(good, typ="JWT", key=stranger),  # not the provider's key
        provider.sign(good, typ="JWT", alg="none"),
        provider.hs256_with_public_key(good),
    ]
    for token in forged:
        with pytest.raises(AuthError) as err:
            await validate_id_token(ctx, meta, token, NONCE)
        assert err.value.code in ("invalid_grant", "invalid_signature")
    # An algorithm the provider does not list is refused even when the signature is good.
    with pytest.raises(AuthError):
        await validate_id_token(
            ctx, {**meta, "id_token_signing_alg_values_supported": ["ES256"]}, provider.sign(good, typ="JWT"), NONCE
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/claim", "/claim"),
        ("/account?x=1", "/account?x=1"),
        ("https://evil.example/", "/account"),
        ("//evil.example", "/account"),
        ("/\\evil.example", "/account"),
        ("", "/account"),
        (None, "/account"),
        ("/x\r\nSet-Cookie: a=b", "/account"),
    ],
)
def test_return_to_is_limited_to_our_own_paths(value, expected):
    assert safe_return_to(value) == expected


# ---- ID-JAG step-up and claims -------------------------------------------------------------------


async def test_the_linking_step_up_completes_and_then_matches_cleanly(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        agent, human = h.agent(), DevHuman(h.client, ISSUER)
        # A person already exists with this email (they signed in once).
        page = await human.follow(f"{ISSUER}/login?return_to=/account")
        await human.post("/login/dev", {"csrf": page.csrf, "email": "cy@example.com", "return_to": "/account"})
        body = await register(h, provider.mint_id_jag("u-b", aud=ISSUER, email="cy@example.com"), expect=401)
        assert body["error"] == "interaction_required"
        # The human opens the link (already signed in), sees the provider, authorizes, reads the code.
        page = await human.follow(body["claim"]["attempt"]["verification_uri"])
        assert page.title == "Link this agent to your account?" and "Test Agents" in page.text
        assert "first time" in page.text
        code = (await human.authorize(page)).code
        done = await agent.complete_claim(body["claim"]["token"], code)
        assert done["status"] == "claimed" and done["id"] == body["id"]
        user = await h.ctx.store.find_user_by_email("cy@example.com")
        delegation = await h.ctx.store.get_delegation(provider.issuer, "u-b")
        assert user is not None and delegation is not None
        assert delegation.status == "active" and delegation.user_id == user.id
        # The next ID-JAG of that subject is a clean match on the human's account.
        clean = await register(h, provider.mint_id_jag("u-b", aud=ISSUER, email="cy@example.com"))
        assert clean["id"] == body["id"] and clean["identity"]["assertion"]
        access = (await exchange(h, clean["identity"]["assertion"]))["access_token"]
        assert (await agent.api("GET", "/notes", access)).status_code == 200
        # A person who is not the matched user cannot authorize the link (wrong account).
        again = await register(h, provider.mint_id_jag("u-c", aud=ISSUER, email="cy@example.com"), expect=401)
        eve = DevHuman(h.client, ISSUER)
        assert (await eve.open_link(again["claim"]["attempt"]["verification_uri"], "eve@example.com")).status == 403


async def test_an_anonymous_account_is_claimed_with_a_later_id_jag(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        agent, human = h.agent(), DevHuman(h.client, ISSUER)
        # The provider subject is already linked to a person: a clean match claims at once.
        linked = await register(h, provider.mint_id_jag("u-1", aud=ISSUER, email="dee@example.com"))
        reg, access = await agent.start()
        body = {
            "type": "identity_assertion",
            "claim_token": reg["claim"]["token"],
            "assertion_type": URN,
            "assertion": provider.mint_id_jag("u-1", aud=ISSUER, email="dee@example.com"),
        }
        r = await agent.post_json("/agent/identity/claim", body)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "claimed" and r.json()["identity"]["refresh_token"]["value"]
        user = await h.ctx.store.find_user_by_email("dee@example.com")
        account = await h.ctx.store.get_account(reg["account"]["id"], h.clock.now())
        assert user is not None and account is not None
        assert account.owner == user.id and account.kind == "persistent" and linked["id"] != reg["id"]
        assert (await agent.api("GET", "/notes", access)).status_code == 401  # the pre-claim token died
        # An unlinked subject gets the step-up: the person with that email signs in and authorizes.
        other, _ = await agent.start()
        body = {
            **body,
            "claim_token": other["claim"]["token"],
            "assertion": provider.mint_id_jag("u-2", aud=ISSUER, email="fay@example.com"),
        }
        r = await agent.post_json("/agent/identity/claim", body)
        assert r.status_code == 401 and r.json()["error"] == "interaction_required"
        assert r.headers["www-authenticate"].startswith('AgentAuth error="interaction_required"')
        page = await human.open_link(r.json()["claim"]["attempt"]["verification_uri"], "fay@example.com")
        done = await agent.complete_claim(other["claim"]["token"], (await human.authorize(page)).code)
        assert done["status"] == "claimed"
        # A bad ID-JAG changes nothing.
        third, _ = await agent.start()
        bad = {**body, "claim_token": third["claim"]["token"], "assertion": "not.a.jwt"}
        assert (await agent.post_json("/agent/identity/claim", bad)).status_code == 400
        assert await agent.claim_status(third["claim"]["token"]) == "pending"


async def test_a_person_first_created_from_an_id_jag_signs_in_as_themself(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        jit = await register(h, provider.mint_id_jag("u-9", aud=ISSUER, email="Hal@Example.com"))
        user = await h.ctx.store.find_user_by_email("hal@example.com")
        assert user is not None
        human = DevHuman(h.client, ISSUER)
        page = await human.follow(f"{ISSUER}/login?return_to=/account")
        page = await human.post("/login/dev", {"csrf": page.csrf, "email": "HAL@example.com", "return_to": "/account"})
        assert page.title == "Your agents and accounts"
        assert user.account_id in page.text and jit["id"] in page.text and "your own account" in page.text
