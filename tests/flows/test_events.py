"""Provider revocation end to end: RFC 8417 SETs pushed per RFC 8935 to the events endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from app import events as ev
from tests.flows.test_idjag import ISSUER, attested, exchange, register
from tests.provider import REVOKED_URIS, SET_CONTENT_TYPE, new_private_key

pytestmark = pytest.mark.anyio


async def push(h: Any, token: str, content_type: str = SET_CONTENT_TYPE) -> Any:
    return await h.client.post(f"{ISSUER}/agent/events", content=token.encode(), headers={"content-type": content_type})


@pytest.mark.parametrize("uri", REVOKED_URIS)
async def test_revocation_kills_what_was_issued_before_it_and_nothing_after(harness_factory, provider, uri):
    async with attested(harness_factory, provider) as h:
        reg = await register(h, provider.mint_id_jag("s-1", aud=ISSUER, email="s1@example.com"))
        assertion = reg["identity"]["assertion"]
        token = (await exchange(h, assertion))["access_token"]
        other = await register(h, provider.mint_id_jag("s-2", aud=ISSUER, email="s2@example.com"))
        other_token = (await exchange(h, other["identity"]["assertion"]))["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await h.client.get(f"{ISSUER}/api/notes", headers=bearer)).status_code == 200

        h.clock.advance(1)  # the SET is issued after the tokens
        r = await push(h, provider.revocation_set("s-1", aud=ISSUER, uri=uri, iat=int(h.clock.now())))
        assert (r.status_code, r.content) == (202, b"")
        # Everything issued for (iss, s-1) at or before the SET's iat is dead at its next use ...
        r = await h.client.get(f"{ISSUER}/api/notes", headers=bearer)
        assert (r.status_code, r.json()["error"]) == (401, "invalid_token")
        assert (await exchange(h, assertion, expect=400))["error"] == "invalid_grant"
        # ... the other subject is untouched ...
        r = await h.client.get(f"{ISSUER}/api/notes", headers={"Authorization": f"Bearer {other_token}"})
        assert r.status_code == 200
        # ... and what the provider vouches for afterwards works again.
        h.clock.advance(1)
        fresh = await register(
            h, provider.mint_id_jag("s-1", aud=ISSUER, email="s1@example.com", iat=int(h.clock.now()))
        )
        fresh_token = (await exchange(h, fresh["identity"]["assertion"]))["access_token"]
        r = await h.client.get(f"{ISSUER}/api/notes", headers={"Authorization": f"Bearer {fresh_token}"})
        assert r.status_code == 200
        events = [e for e in await h.ctx.store.events() if isinstance(e, ev.RegistrationRevoked)]
        assert len(events) == 1 and (events[0].by, events[0].provider) == ("provider", provider.issuer)


async def test_bad_sets_get_rfc8935_errors_and_change_nothing(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        reg = await register(h, provider.mint_id_jag("s-3", aud=ISSUER, email="s3@example.com"))
        token = (await exchange(h, reg["identity"]["assertion"]))["access_token"]
        h.clock.advance(1)
        now = int(h.clock.now())
        attacker = new_private_key("RS256")
        cases = [
            (provider.revocation_set("s-3", aud=ISSUER, typ="JWT"), "invalid_request"),
            (provider.mint_id_jag("s-3", aud=ISSUER, email="s3@example.com"), "invalid_request"),
            (provider.revocation_set("s-3", aud=ISSUER, issuer="https://stranger.example"), "invalid_issuer"),
            (provider.revocation_set("s-3", aud="https://other.example"), "invalid_audience"),
            (provider.revocation_set("s-3", aud=ISSUER, key=attacker), "invalid_key"),
            (provider.revocation_set("s-3", aud=ISSUER, kid="unknown"), "invalid_key"),
            (provider.revocation_set("s-3", aud=ISSUER, iat=now - 3600), "invalid_request"),  # stale
            (provider.revocation_set("s-3", aud=ISSUER, iat=now + 3600), "invalid_request"),  # future
            ("garbage", "invalid_request"),
        ]
        for set_token, err in cases:
            r = await push(h, set_token)
            assert r.status_code == 400, r.text
            assert r.json()["err"] == err and r.json()["description"]
            assert set(r.json()) == {"err", "description"}  # RFC 8935 §2.3 body, not ours
        r = await push(h, provider.revocation_set("s-3", aud=ISSUER), content_type="application/json")
        assert (r.status_code, r.json()["err"]) == (400, "invalid_request")
        # An unknown event type is accepted and ignored.
        r = await push(h, provider.mint_set({"https://example.com/events/unknown": {}}, aud=ISSUER, sub="s-3"))
        assert r.status_code == 202
        assert (
            await h.client.get(f"{ISSUER}/api/notes", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
        # Replay: the same SET twice is refused the second time.
        once = provider.revocation_set("s-3", aud=ISSUER, iat=now, jti="set-1")
        assert (await push(h, once)).status_code == 202
        r = await push(h, once)
        assert (r.status_code, r.json()["err"]) == (400, "invalid_request")
        assert "already" in r.json()["description"]


async def test_a_set_about_a_stranger_subject_changes_nothing(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        reg = await register(h, provider.mint_id_jag("s-4", aud=ISSUER, email="s4@example.com"))
        token = (await exchange(h, reg["identity"]["assertion"]))["access_token"]
        h.clock.advance(1)
        assert (await push(h, provider.revocation_set("nobody", aud=ISSUER, iat=int(h.clock.now())))).status_code == 202
        assert (
            await h.client.get(f"{ISSUER}/api/notes", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
        assert [e for e in await h.ctx.store.events() if isinstance(e, ev.RegistrationRevoked)] == []
