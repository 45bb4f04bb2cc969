"""Input hygiene in-process, for the paths the adversarial battery (tests/adversarial) does not drive
against the real server: NFC equivalence of a login_hint and a sign-in, the ID-JAG's phone number, and
a poisoned ID-JAG email at the token endpoint and at the claim endpoint. Each refusal changes nothing."""

from __future__ import annotations

import pytest

from tests.flows.test_idjag import ISSUER, URN, attested, exchange, register, snapshot
from tests.helpers import DevHuman

pytestmark = pytest.mark.anyio


async def test_a_login_hint_and_a_sign_in_are_one_person_however_the_accent_was_typed(harness):
    agent, human = harness.agent(), DevHuman(harness.client, harness.settings.issuer_str)
    reg = await agent.register()
    # The agent sends "José" decomposed (e + U+0301); the person types it precomposed (U+00E9).
    attempt = await agent.start_claim(reg["claim"]["token"], "Jose\u0301@Example.com")
    page = await human.open_link(attempt["attempt"]["verification_uri"], "jos\u00e9@example.com")
    assert page.status == 200 and page.title == "Authorize this agent?", page.text
    assert "Signed in as <strong>jos\u00e9@example.com</strong>" in page.text


async def test_an_id_jag_phone_number_must_be_printable_ascii(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        before = await snapshot(h)
        bad = provider.mint_id_jag("u-tel", aud=ISSUER, phone_number="+1555\u202e0100")
        refused = await register(h, bad, expect=400)
        assert refused["error"] == "missing_verified_email" and "U+202E" in refused["error_description"]
        assert await snapshot(h) == before
        await register(h, provider.mint_id_jag("u-tel", aud=ISSUER, phone_number="+1 555 555 0100"))
        assert await h.ctx.store.find_user_by_email("tel:+1 555 555 0100") is not None


async def test_a_poisoned_id_jag_email_is_refused_at_the_token_and_claim_endpoints(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        agent = h.agent()
        reg = await agent.register()
        before = await snapshot(h)
        poisoned = "ada\u200b@example.com"
        grant = await exchange(h, provider.mint_id_jag("u-z", aud=ISSUER, email=poisoned), expect=400)
        # RFC 6749 §5.2 at the token endpoint: invalid_grant, carrying the ID-JAG's own code.
        assert grant["error"] == "invalid_grant"
        assert (
            grant["error_description"].startswith("missing_verified_email: ") and "U+200B" in grant["error_description"]
        )
        body = {
            "type": "identity_assertion",
            "claim_token": reg["claim"]["token"],
            "assertion_type": URN,
            "assertion": provider.mint_id_jag("u-z", aud=ISSUER, email=poisoned),
        }
        r = await agent.post_json("/agent/identity/claim", body)
        assert r.status_code == 400 and r.json()["error"] == "missing_verified_email", r.text
        assert await snapshot(h) == before
        assert await h.ctx.store.get_claim(reg["account"]["id"], reg["id"], h.clock.now()) is None
