"""The claim ceremony in-process (spec/protocol.md § Claim): the agent's API, the human pages with the
development sign-in, and every failure path of spec/protocol.md's table. The real OpenID Connect provider
and the real browser are in tests/e2e."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from app import events as ev
from app.flows.session import HeldAttempt
from app.tokens import stored_hash as attempt_hash
from tests.helpers import DevHuman, claimed

pytestmark = pytest.mark.anyio


async def test_the_whole_ceremony_makes_the_account_the_humans(harness):
    agent, human = harness.agent(), DevHuman(harness.client, harness.settings.issuer_str)
    reg, access = await agent.start()
    assert (await agent.api("POST", "/notes", access, json={"text": "before"})).status_code == 201
    token = reg["claim"]["token"]
    assert await agent.claim_status(token) == "pending"
    attempt = await agent.start_claim(token, "Ada@Example.com")
    assert attempt["id"] == reg["id"] and attempt["type"] == "service_auth"
    assert attempt["attempt"]["expires_at"].endswith("Z")
    page = await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com")
    assert page.status == 200 and page.title == "Authorize this agent?", page.text
    early = await agent.complete_claim(token, "000000", expect=409)
    assert early["error"] == "claim_not_confirmed"
    shown = await human.authorize(page)
    assert re.fullmatch(r"\d{6}", shown.code)
    assert await agent.claim_status(token) == "confirmed"
    done = await agent.complete_claim(token, shown.code)
    assert done["id"] == reg["id"] and done["status"] == "claimed"
    identity = done["identity"]
    assert identity["refresh_token"]["value"].startswith("art_")
    # The pre-claim assertion and access token are dead; the new ones carry the post-claim scopes.
    assert (await agent.api("GET", "/notes", access)).status_code == 401
    await agent.token(reg["identity"]["assertion"], expect=400)
    new_access = await agent.token(identity["assertion"])
    assert set(new_access["scope"].split()) == {"notes:read", "notes:write", "notes:delete"}
    notes = (await agent.api("GET", "/notes", new_access["access_token"])).json()
    assert notes["count"] == 1 and notes["limit"] == harness.settings.claimed_quota_notes
    assert await agent.claim_status(token) == "claimed"
    again = await agent.complete_claim(token, shown.code, expect=409)
    assert again["error"] == "already_claimed"
    refreshed = await agent.refresh(identity["refresh_token"]["value"])
    assert (
        refreshed["type"] == "refresh"
        and refreshed["identity"]["refresh_token"]["value"] != identity["refresh_token"]["value"]
    )


def parties(h):
    return h.agent(), DevHuman(h.client, h.settings.issuer_str)


async def ready(h, email="ada@example.com", hint="ada@example.com"):
    """A fresh registration whose human has the claim page open: (agent, human, reg, page)."""
    agent, human = parties(h)
    reg = await agent.register()
    attempt = await agent.start_claim(reg["claim"]["token"], hint)
    page = await human.open_link(attempt["attempt"]["verification_uri"], email)
    return agent, human, reg, page


async def test_wrong_codes_are_limited_per_attempt_then_the_attempt_dies(harness):
    agent, human, reg, page = await ready(harness)
    token = reg["claim"]["token"]
    code = (await human.authorize(page)).code
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1):
        body = await agent.complete_claim(token, wrong, expect=401)
        assert body["error"] == "invalid_user_code" and f"{left} tries left" in body["error_description"]
    last = await agent.complete_claim(token, wrong, expect=401)
    assert "ended" in last["error_description"]
    # The right code no longer works: the attempt is gone; a new attempt starts clean.
    assert (await agent.complete_claim(token, code, expect=400))["error"] == "invalid_claim"
    assert await agent.claim_status(token) == "pending"
    attempt = await agent.start_claim(token, "ada@example.com")
    page = await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com")
    fresh = (await human.authorize(page)).code
    assert (await agent.complete_claim(token, fresh))["status"] == "claimed"


async def test_malformed_codes_count_as_wrong_and_change_nothing_else(harness):
    agent, human, reg, page = await ready(harness)
    await human.authorize(page)
    for bad in ("12345", "abcdef", "1234567", ""):
        assert (await agent.complete_claim(reg["claim"]["token"], bad, expect=401))["error"] == "invalid_user_code"
    assert await agent.claim_status(reg["claim"]["token"]) == "confirmed"


async def test_wrong_codes_across_attempts_are_capped_per_claim(harness):
    agent, human = parties(harness)
    reg = await agent.register()
    token = reg["claim"]["token"]
    for _ in range(3):
        attempt = await agent.start_claim(token, "ada@example.com")
        page = await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com")
        code = (await human.authorize(page)).code
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(5):
            await agent.complete_claim(token, wrong, expect=401)
    # Locked for good: said so, with no Retry-After (waiting changes nothing), at every step.
    r = await agent.post_json("/agent/identity/claim", {"type": "service_auth", "claim_token": token})
    assert r.status_code == 410 and "retry-after" not in r.headers, r.text
    assert r.json()["error"] == "claim_expired" and "15 wrong codes" in r.json()["error_description"]
    assert (await agent.complete_claim(token, code, expect=410))["error"] == "claim_expired"
    assert await agent.claim_status(token) == "expired"


async def test_an_expired_code_is_refused(harness):
    agent, human, reg, page = await ready(harness)
    code = (await human.authorize(page)).code
    harness.clock.advance(601)
    assert (await agent.complete_claim(reg["claim"]["token"], code, expect=410))["error"] == "user_code_expired"
    assert await agent.claim_status(reg["claim"]["token"]) == "pending"


async def test_several_attempts_live_at_once_up_to_the_cap(harness):
    """Revision 2: a new attempt does not kill the older ones; one past the cap is too_many_attempts."""
    agent, human = parties(harness)
    reg = await agent.register()
    token = reg["claim"]["token"]
    links = [(await agent.start_claim(token, "ada@example.com"))["attempt"]["verification_uri"] for _ in range(3)]
    refused = await agent.start_claim(token, "ada@example.com", expect=429)
    assert refused["error"] == "too_many_attempts" and refused["retry_after"] > 0
    # The first link still works, and its code completes the claim (the agent names no attempt).
    page = await human.open_link(links[0], "ada@example.com")
    assert page.title == "Authorize this agent?", page.text
    code = (await human.authorize(page)).code
    done = await agent.complete_claim(token, code)
    assert done["status"] == "claimed"
    # Completion ended every other attempt: their links are dead.
    other = await human.follow(links[1])
    assert other.status == 409 and other.title == "Already claimed"


async def test_each_attempt_keeps_its_own_login_hint(harness):
    agent, ada = parties(harness)
    eve = DevHuman(harness.client, harness.settings.issuer_str)
    reg = await agent.register()
    token = reg["claim"]["token"]
    for_ada = (await agent.start_claim(token, "ada@example.com"))["attempt"]["verification_uri"]
    for_eve = (await agent.start_claim(token, "eve@example.com"))["attempt"]["verification_uri"]
    assert (await eve.open_link(for_ada, "eve@example.com")).title == "Wrong account"
    page = await eve.open_link(for_eve, "eve@example.com")
    code = (await eve.authorize(page)).code
    assert (await ada.open_link(for_eve, "ada@example.com")).title == "Wrong account"
    done = await agent.complete_claim(token, code)
    assert done["status"] == "claimed"
    owner = (await harness.ctx.store.get_account(reg["account"]["id"], harness.clock.now())).owner
    assert owner == (await harness.ctx.store.find_user_by_email("eve@example.com")).id


async def test_the_code_is_read_back_as_the_page_groups_it(harness):
    agent, human = parties(harness)
    for spelled in ("{a} {b}", "{a}-{b}", " {a}{b} ", "{a}\u2011{b}"):
        reg = await agent.register()
        attempt = await agent.start_claim(reg["claim"]["token"], "ada@example.com")
        code = (
            await human.authorize(await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com"))
        ).code
        typed = spelled.format(a=code[:3], b=code[3:])
        assert (await agent.complete_claim(reg["claim"]["token"], typed))["status"] == "claimed", typed


async def test_login_hint_is_an_alias_of_service_auth(harness):
    agent, human = parties(harness)
    reg = await agent.register()
    body = {"type": "login_hint", "claim_token": reg["claim"]["token"], "login_hint": "ada@example.com"}
    r = await agent.post_json("/agent/identity/claim", body)
    assert r.status_code == 200 and r.json()["type"] == "service_auth", r.text
    page = await human.open_link(r.json()["attempt"]["verification_uri"], "ada@example.com")
    assert page.title == "Authorize this agent?"


async def test_wrong_codes_are_charged_to_the_claim_across_live_attempts(harness):
    """5 wrong codes in a window end every live attempt, however many there are."""
    agent, human = parties(harness)
    reg = await agent.register()
    token = reg["claim"]["token"]
    codes = []
    for _ in range(2):
        attempt = await agent.start_claim(token, "ada@example.com")
        codes.append(
            (
                await human.authorize(await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com"))
            ).code
        )
    wrong = next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in codes)
    for _ in range(5):
        body = await agent.complete_claim(token, wrong, expect=401)
        assert body["error"] == "invalid_user_code"
    assert "ended every open attempt" in body["error_description"]
    for code in codes:
        assert (await agent.complete_claim(token, code, expect=400))["error"] == "invalid_claim"


async def test_a_claim_method_the_operator_turned_off(harness_factory):
    async with harness_factory(claim_methods=["identity_assertion"]) as h:
        agent = h.agent()
        reg = await agent.register()
        body = await agent.start_claim(reg["claim"]["token"], "ada@example.com", expect=403)
        assert body["error"] == "auth_method_disabled"
        r = await agent.post_json("/agent/identity", {"type": "service_auth", "login_hint": "ada@example.com"})
        assert (r.status_code, r.json()["error"]) == (400, "service_auth_registration_disabled")
        meta = (await h.client.get(f"{agent.issuer}/.well-known/oauth-authorization-server")).json()
        assert "service_auth" not in meta["agent_auth"]["identity_types_supported"]


async def test_a_method_turned_off_while_an_attempt_is_live(harness_factory, tmp_path):
    """The operator restarts with service_auth removed: the live attempt's code completes nothing."""
    from tests.conftest import make_settings

    async with harness_factory() as h:
        agent, human = parties(h)
        reg = await agent.register()
        attempt = await agent.start_claim(reg["claim"]["token"], "ada@example.com")
        code = (
            await human.authorize(await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com"))
        ).code
        ctx = h.ctx
        ctx.settings = make_settings(tmp_path, claim_methods=["identity_assertion"])
        body = await agent.complete_claim(reg["claim"]["token"], code, expect=403)
        assert body["error"] == "auth_method_disabled"


async def test_claims_close_with_the_temporary_account(harness):
    agent, human, reg, page = await ready(harness)
    code = (await human.authorize(page)).code
    harness.clock.advance(harness.settings.anonymous_ttl_seconds)
    token = reg["claim"]["token"]
    assert (await agent.complete_claim(token, code, expect=410))["error"] == "claim_expired"
    assert (await agent.start_claim(token, "ada@example.com", expect=410))["error"] == "claim_expired"
    assert await agent.claim_status(token) == "expired"


async def test_of_two_racing_completions_exactly_one_wins(harness):
    import asyncio

    agent, human, reg, page = await ready(harness)
    code = (await human.authorize(page)).code
    results = await asyncio.gather(
        *(
            harness.client.post(
                f"{agent.issuer}/agent/identity/claim/complete",
                json={"claim_token": reg["claim"]["token"], "user_code": code},
            )
            for _ in range(4)
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 409, 409, 409], [r.text for r in results]
    assert all(r.json()["error"] == "already_claimed" for r in results if r.status_code == 409)


async def test_a_login_hint_binds_the_attempt_to_that_person(harness):
    agent, human = parties(harness)
    reg = await agent.register()
    attempt = await agent.start_claim(reg["claim"]["token"], "ada@example.com")
    page = await human.open_link(attempt["attempt"]["verification_uri"], "eve@example.com")
    assert page.status == 403 and page.title == "Wrong account"
    assert "Switch account" in page.text
    assert "a•••@example.com" in page.text and "ada@example.com" not in page.text  # the hint is not disclosed
    # Posting a confirm form anyway (naming the attempt her browser holds) is refused too, and no code exists.
    return_to = parse_qs(urlsplit(attempt["attempt"]["verification_uri"]).query)["return_to"][0]
    link_token = parse_qs(urlsplit(return_to).query)["claim_attempt_token"][0]
    held = HeldAttempt(account_id="", registration_id="", attempt_hash=attempt_hash(link_token))
    refused = await human.post("/claim/confirm", {"csrf": page.csrf, "attempt": held.ref})
    assert refused.status == 403 and 'class="code"' not in refused.text
    assert await agent.claim_status(reg["claim"]["token"]) == "pending"
    # Switch account: sign out, keep the claim, sign in as the right person.
    switched = await human.post("/logout", {"csrf": page.csrf, "return_to": "/claim"})
    assert switched.title == "Development sign-in"
    page = await human.post("/login/dev", {"csrf": switched.csrf, "email": "ada@example.com", "return_to": "/claim"})
    assert page.title == "Authorize this agent?"


async def test_an_unbound_claim_goes_to_the_first_person_who_authorizes(harness):
    agent, human = parties(harness)
    other = DevHuman(harness.client, agent.issuer)
    reg = await agent.register()
    attempt = await agent.start_claim(reg["claim"]["token"])
    link = attempt["attempt"]["verification_uri"]
    page = await human.open_link(link, "ada@example.com")
    theirs = await other.open_link(link, "eve@example.com")
    code = (await human.authorize(page)).code
    late = await other.authorize(theirs)
    assert late.status == 400 and "another person already authorized" in late.text
    done = await agent.complete_claim(reg["claim"]["token"], code)
    account = await harness.ctx.store.get_account(reg["account"]["id"], harness.clock.now())
    user = await harness.ctx.store.find_user_by_email("ada@example.com")
    assert done["status"] == "claimed" and account is not None and user is not None and account.owner == user.id


async def test_an_operator_can_require_a_login_hint(harness_factory):
    async with harness_factory(claim_require_login_hint=True) as h:
        agent = h.agent()
        reg = await agent.register()
        body = await agent.start_claim(reg["claim"]["token"], expect=400)
        assert body["error"] == "invalid_login_hint"
        assert (await agent.start_claim(reg["claim"]["token"], "not-an-email", expect=400))["error"] == (
            "invalid_login_hint"
        )


async def test_this_wasnt_me_revokes_everything(harness):
    agent, human = parties(harness)
    reg, access = await agent.start()
    attempt = await agent.start_claim(reg["claim"]["token"], "ada@example.com")
    page = await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com")
    gone = await human.deny(page)
    assert gone.title == "Access revoked"
    assert (await agent.api("GET", "/notes", access)).status_code == 401
    await agent.token(reg["identity"]["assertion"], expect=400)
    # Revision 2: the agent learns it was denied at completion, and that the registration is revoked at
    # a new attempt.
    assert await agent.claim_status(reg["claim"]["token"]) == "denied"
    assert (await agent.complete_claim(reg["claim"]["token"], "123456", expect=403))["error"] == "claim_denied"
    assert (await agent.start_claim(reg["claim"]["token"], "ada@example.com", expect=410))["error"] == "claim_revoked"
    events = await harness.ctx.store.events()
    assert [ev.type_of(e) for e in events][-2:] == ["agent_registration.claim.denied", "agent_registration.revoked"]
    assert isinstance(events[-1], ev.RegistrationRevoked) and (events[-1].by, events[-1].reason) == (
        "human",
        "claim_denied",
    )


async def test_a_revoked_registration_answers_claim_revoked(harness):
    agent = harness.agent()
    reg, _access = await agent.start()
    token = reg["claim"]["token"]
    await agent.start_claim(token, "ada@example.com")
    # The agent revokes its own assertion (an anonymous temporary account is deleted: claim_expired) …
    r = await harness.client.post(f"{agent.issuer}/oauth2/revoke", data={"token": reg["identity"]["assertion"]})
    assert r.status_code == 200
    assert (await agent.complete_claim(token, "123456", expect=410))["error"] == "claim_expired"
    # … while a registration revoked and still there (here by the operator) answers claim_revoked.
    other = await agent.register()
    await agent.start_claim(other["claim"]["token"], "ada@example.com")
    now = harness.clock.now()
    event = [ev.new(ev.RegistrationRevoked, now, other["account"]["id"], other["id"], by="operator")]
    assert await harness.ctx.store.revoke_registration(other["account"]["id"], other["id"], int(now), event)
    for step in (
        agent.complete_claim(other["claim"]["token"], "123456", expect=410),
        agent.start_claim(other["claim"]["token"], "ada@example.com", expect=410),
    ):
        assert (await step)["error"] == "claim_revoked"
    assert await agent.claim_status(other["claim"]["token"]) == "revoked"


async def test_forms_without_the_csrf_token_change_nothing(harness):
    agent, human, reg, _page = await ready(harness)
    for fields in ({}, {"csrf": "forged"}):
        refused = await human.post("/claim/confirm", fields)
        assert refused.status == 400 and 'class="code"' not in refused.text
        assert (await human.post("/claim/deny", fields)).status == 400
    assert await agent.claim_status(reg["claim"]["token"]) == "pending"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
async def test_return_to_stays_on_this_site(harness, target):
    human = DevHuman(harness.client, harness.settings.issuer_str)
    page = await human.follow(f"{harness.settings.issuer}/login?return_to={target}")
    r = await human._send(
        "POST",
        f"{harness.settings.issuer}/login/dev",
        data={"csrf": page.csrf, "email": "ada@example.com", "return_to": target},
    )
    assert r.status_code == 303 and r.headers["location"] == "/account"


async def test_the_attempt_token_leaves_the_url_and_pages_are_locked_down(harness):
    agent, _human = parties(harness)
    reg = await agent.register()
    uri = (await agent.start_claim(reg["claim"]["token"], "ada@example.com"))["attempt"]["verification_uri"]
    token = re.search(r"cvt_[^&%]+", uri.replace("%2E", ".")).group(0)
    r = await harness.client.get(f"{agent.issuer}/claim?claim_attempt_token={token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/claim"
    for path in ("/claim", "/login?return_to=/claim"):
        r = await harness.client.get(f"{agent.issuer}{path}", follow_redirects=False)
        assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp
    cookie = (
        r.headers.get("set-cookie", "") or (await harness.client.get(f"{agent.issuer}/login")).headers["set-cookie"]
    )
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()


async def test_refresh_rotates_and_reuse_after_the_grace_revokes_the_family(harness):
    agent, human = parties(harness)
    _reg, done = await claimed(agent, human)
    first = done["identity"]["refresh_token"]["value"]
    second = (await agent.refresh(first))["identity"]["refresh_token"]["value"]
    # A retry within the grace gets the same successor (a lost response is not theft).
    assert (await agent.refresh(first))["identity"]["refresh_token"]["value"] == second
    third_body = await agent.refresh(second)
    third = third_body["identity"]["refresh_token"]["value"]
    access = (await agent.token(third_body["identity"]["assertion"]))["access_token"]
    harness.clock.advance(harness.settings.refresh_grace_seconds + 1)
    reused = await agent.refresh(first, expect=400)
    assert reused["error"] == "invalid_refresh_token"
    # The whole family is dead now, the live token and its access tokens included.
    assert (await agent.refresh(third, expect=400))["error"] == "invalid_refresh_token"
    assert (await agent.api("GET", "/notes", access)).status_code == 401
    assert (await agent.refresh("art_garbage", expect=400))["error"] == "invalid_refresh_token"


async def test_a_forged_refresh_token_changes_nothing(harness):
    agent, human = parties(harness)
    _reg, done = await claimed(agent, human)
    value = done["identity"]["refresh_token"]["value"]
    forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    assert (await agent.refresh(forged, expect=400))["error"] == "invalid_refresh_token"
    assert (await agent.refresh(value))["type"] == "refresh"


async def test_service_auth_registration_issues_nothing_until_the_human_authorizes(harness):
    agent, human = parties(harness)
    assert (await agent.register({"type": "service_auth"}, expect=400))["error"] == "invalid_login_hint"
    reg = await agent.register({"type": "service_auth", "login_hint": "ada@example.com"})
    assert reg["type"] == "service_auth" and "identity" not in reg
    assert reg["scopes"] == {"post_claim": list(harness.settings.post_claim_scopes)}
    claim = reg["claim"]
    assert claim["token"].startswith("clm_") and claim["attempt"]["verification_uri"].startswith(agent.issuer)
    assert await agent.claim_status(claim["token"]) == "pending"
    page = await human.open_link(claim["attempt"]["verification_uri"], "ada@example.com")
    assert page.title == "Authorize this agent?"
    done = await agent.complete_claim(claim["token"], (await human.authorize(page)).code)
    tok = await agent.token(done["identity"]["assertion"])
    assert (await agent.api("DELETE", "/notes/note_missing", tok["access_token"])).status_code == 404


async def test_bad_claim_tokens(harness):
    agent = harness.agent()
    reg = await agent.register()
    forged = reg["claim"]["token"][:-3] + "xyz"
    r = await agent.post_json("/agent/identity/claim", {"type": "service_auth", "claim_token": forged})
    assert r.status_code == 401 and r.json()["error"] == "invalid_claim_token"
    assert r.headers["www-authenticate"].startswith('AgentAuth error="invalid_claim_token"')
    r = await agent.post_json("/agent/identity/claim", {"type": "service_auth", "claim_token": "nope"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_claim_token"
    r = await agent.post_json("/agent/identity/claim/complete", {"claim_token": "nope", "user_code": "123456"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_claim"
    r = await agent.post_json(
        "/agent/identity/claim/complete", {"claim_token": reg["claim"]["token"], "user_code": "1"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_claim"  # no attempt started
    r = await agent.post_json("/agent/identity/claim", {"type": "carrier_pigeon", "claim_token": reg["claim"]["token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_without_a_sign_in_outside_dev_mode_claims_are_not_offered(harness_factory):
    async with harness_factory(issuer="https://auth.example") as h:
        meta = (await h.client.get("https://auth.example/.well-known/oauth-authorization-server")).json()
        assert meta["agent_auth"]["identity_types_supported"] == ["anonymous"]
        assert meta["agent_auth"]["claim"]["offered"] is False
        reg = await h.agent().register()
        body = await h.agent().start_claim(reg["claim"]["token"], "ada@example.com", expect=403)
        assert body["error"] == "auth_method_disabled"
        r = await h.client.get("https://auth.example/login", follow_redirects=False)
        assert r.status_code == 404


async def test_the_account_page_lists_and_revokes_what_the_human_owns(harness):
    agent, human = parties(harness)
    reg, done = await claimed(agent, human)
    access = (await agent.token(done["identity"]["assertion"]))["access_token"]
    page = await human.follow(f"{agent.issuer}/account")
    assert page.title == "Your agents and accounts" and reg["id"] in page.text and reg["account"]["id"] in page.text
    confirm = await human.post(
        "/account/revoke",
        {"csrf": page.csrf, "account_id": reg["account"]["id"], "registration_id": reg["id"]},
    )
    assert confirm.title == "Revoke this agent?"  # Revoke asks first: nothing is revoked yet
    assert (await agent.api("GET", "/notes", access)).status_code == 200
    after = await human.post("/account/revoke/confirm", confirm.form("/account/revoke/confirm"))
    assert after.title == "Your agents and accounts" and "revoked" in after.text
    assert (await agent.api("GET", "/notes", access)).status_code == 401
    # Someone else's account cannot be revoked from here.
    stranger = DevHuman(harness.client, agent.issuer)
    own = await stranger.follow(f"{agent.issuer}/login?return_to=/account")
    own = await stranger.post("/login/dev", {"csrf": own.csrf, "email": "eve@example.com", "return_to": "/account"})
    for step in ("/account/revoke", "/account/revoke/confirm"):
        fields = {"csrf": own.csrf, "account_id": reg["account"]["id"], "registration_id": reg["id"]}
        assert (await stranger.post(step, fields)).status == 404


async def test_the_ceremony_on_redis_and_redis_cluster(harness_factory, shared_redis, redis_cluster):
    import uuid

    for url in (shared_redis.url, redis_cluster.url):
        async with harness_factory(store_url=f"{url}?prefix=claim{uuid.uuid4().hex[:8]}:") as h:
            agent, human = parties(h)
            reg, done = await claimed(agent, human)
            assert done["status"] == "claimed"
            rotated = await agent.refresh(done["identity"]["refresh_token"]["value"])
            access = (await agent.token(rotated["identity"]["assertion"]))["access_token"]
            assert (await agent.api("GET", "/notes", access)).json()["limit"] == h.settings.claimed_quota_notes
            page = await human.follow(f"{agent.issuer}/account")
            assert reg["account"]["id"] in page.text
            # Past the temporary account's end: claimed, it lives on (the app's sweeper runs on its clock).
            h.clock.advance(h.settings.anonymous_ttl_seconds + 1)
            later = await agent.refresh(rotated["identity"]["refresh_token"]["value"])
            access = (await agent.token(later["identity"]["assertion"]))["access_token"]
            assert (await agent.api("GET", "/notes", access)).status_code == 200


async def test_revoking_a_refresh_token_kills_the_grant(harness):
    agent, human = parties(harness)
    _reg, done = await claimed(agent, human)
    value = done["identity"]["refresh_token"]["value"]
    access = (await agent.token(done["identity"]["assertion"]))["access_token"]
    # A forged one (right shape, wrong MAC) changes nothing, and still gets 200 (RFC 7009 §2.2).
    forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    r = await harness.client.post(f"{agent.issuer}/oauth2/revoke", data={"token": forged})
    assert r.status_code == 200 and (await agent.api("GET", "/notes", access)).status_code == 200
    r = await harness.client.post(f"{agent.issuer}/oauth2/revoke", data={"token": value})
    assert r.status_code == 200
    assert (await agent.api("GET", "/notes", access)).status_code == 401
    assert (await agent.refresh(value, expect=400))["error"] == "invalid_refresh_token"


async def test_new_browser_sessions_are_rate_limited_per_source(harness):
    from app.routes.web import NEW_SESSIONS_PER_SOURCE

    url = f"{harness.settings.issuer}/login"
    for _ in range(NEW_SESSIONS_PER_SOURCE):
        harness.client.cookies.clear()
        assert (await harness.client.get(url)).status_code == 200
    harness.client.cookies.clear()
    refused = await harness.client.get(url)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "set-cookie" not in refused.headers and "Too many requests" in refused.text
