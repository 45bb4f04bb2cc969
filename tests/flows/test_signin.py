"""ID-token validation (OpenID Connect Core §3.1.3.7) against a real JWKS server, one failure at a
time; the ID-JAG paths of the claim: the account-linking step-up and the claim by ID-JAG; and sign-in at a
real OpenID provider in both claim placements (ID token, or UserInfo: §5.3, §5.4) with its failure paths."""

from __future__ import annotations

import contextlib
import html
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.clock import ManualClock
from app.config import Secret
from app.errors import AuthError
from app.flows.signin import safe_return_to, validate_id_token
from app.outbound import oidc
from tests.flows.test_idjag import ISSUER, URN, attested, exchange, register
from tests.helpers import DevHuman, Page
from tests.oidc_server import DEFAULT_REDIRECT_URI, OidcProvider, alogin_via_http
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
        assert user.account_id in page.text and jit["id"] in page.text and "Your own account" in page.text


# ---- sign-in at the real provider (node oidc-provider), in-process -------------------------------
# The app runs in-process (tests/conftest.py) and talks to the real provider over its own HTTP client:
# discovery, the token endpoint, the JWKS and UserInfo. The "browser" at the provider is a plain HTTP
# client driving its login form (tests/oidc_server.py).


@contextlib.asynccontextmanager
async def signed_in_app(harness_factory: Any, provider: OidcProvider, **settings: Any) -> AsyncIterator[Any]:
    """The app with ``provider`` as its sign-in provider (its first client, whose redirect URI is this
    app's callback), on a clock that reads the real time (the provider's tokens carry it)."""
    async with harness_factory(
        clock=ManualClock(time.time()),
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=Secret(provider.client_secret),
        **settings,
    ) as h:
        yield h


async def sign_in_at(h: Any, login: str) -> Page:
    """/login at the app, the provider's form with ``login``, then the callback at the app: its answer."""
    r = await h.client.get("/login", params={"return_to": "/account"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    async with httpx.AsyncClient(timeout=10.0) as browser:
        callback = urlsplit(await alogin_via_http(browser, r.headers["location"], login))
    assert callback.path == "/oidc/callback"
    return Page(await h.client.get(f"{callback.path}?{callback.query}", follow_redirects=False))


def shown(page: Page) -> str:
    """What the page says (its <main>), for assertions and their messages."""
    found = re.search(r"<main>.*</main>", page.text, re.DOTALL)
    return html.unescape(found.group(0) if found else page.text)


async def assert_refused(h: Any, page: Page, status: int, says: str, *emails: str) -> None:
    """The sign-in was refused with ``says`` on the page, nobody is signed in and no person was created."""
    assert page.status == status and says in shown(page), shown(page)
    assert (await h.client.get("/account", follow_redirects=False)).headers["location"].startswith("/login")
    for email in emails:
        assert await h.ctx.store.find_user_by_email(email) is None


async def test_a_sign_in_works_with_either_claim_placement(harness_factory, oidc_provider_each_placement):
    """The email claims in the ID token, or (oidc-provider's default, OIDC Core §5.4) only from UserInfo:
    either way the verified email signs in, lower-cased, and an unverified one does not."""
    async with signed_in_app(harness_factory, oidc_provider_each_placement) as h:
        page = await sign_in_at(h, "Ada.Lovelace@Example.com")
        assert page.status == 303 and page.response.headers["location"] == "/account", shown(page)
        user = await h.ctx.store.find_user_by_email("ada.lovelace@example.com")
        assert user is not None
        account = Page(await h.client.get("/account"))
        assert account.title == "Your agents and accounts" and "ada.lovelace@example.com" in account.text
    async with signed_in_app(harness_factory, oidc_provider_each_placement) as h:
        page = await sign_in_at(h, "unverified+bob@example.com")
        await assert_refused(h, page, 400, "has not verified this email address", "bob@example.com")


async def test_without_required_verification_userinfo_gives_the_email(harness_factory, oidc_provider):
    """`oidc_require_verified_email = false`: an unverified address from UserInfo signs in."""
    async with signed_in_app(harness_factory, oidc_provider, oidc_require_verified_email=False) as h:
        assert (await sign_in_at(h, "unverified+Bea@Example.com")).status == 303
        assert await h.ctx.store.find_user_by_email("bea@example.com") is not None


async def test_no_email_in_the_id_token_nor_from_userinfo(harness_factory, oidc_provider):
    async with signed_in_app(harness_factory, oidc_provider) as h:
        page = await sign_in_at(h, "dave")  # an account without an email (the login convention)
        await assert_refused(h, page, 400, "gave no email address, neither in the ID token nor from UserInfo")


async def test_userinfo_about_another_subject_is_refused(harness_factory, oidc_provider_factory):
    """OIDC Core §5.3.2: UserInfo's `sub` must be the ID token's, else its claims are not about this person."""
    provider = oidc_provider_factory(
        [DEFAULT_REDIRECT_URI], userinfo_claims={"kim@example.com": {"sub": "someone-else"}}
    )
    async with signed_in_app(harness_factory, provider) as h:
        page = await sign_in_at(h, "kim@example.com")
        await assert_refused(h, page, 400, "UserInfo response is about another subject", "kim@example.com")


async def test_the_id_tokens_claims_win_and_userinfo_is_asked_only_for_what_it_lacks(
    harness_factory, oidc_provider_factory
):
    # The ID token has both claims: UserInfo is not asked (here it would fail) and could not override them.
    provider = oidc_provider_factory(
        [DEFAULT_REDIRECT_URI],
        claims_in_id_token=True,
        userinfo_claims={"kim@example.com": {"email": "mallory@example.com"}},
        userinfo_fault={"status": 500},
    )
    async with signed_in_app(harness_factory, provider) as h:
        assert (await sign_in_at(h, "kim@example.com")).status == 303
        assert await h.ctx.store.find_user_by_email("kim@example.com") is not None
        assert await h.ctx.store.find_user_by_email("mallory@example.com") is None
    # The ID token has the email but not email_verified: UserInfo's `email_verified` is taken, as it is
    # about the same address.
    provider = oidc_provider_factory(
        [DEFAULT_REDIRECT_URI],
        claims_in_id_token=True,
        accounts={
            "lu@example.com": {"email_verified": None},
            "max@example.com": {"email_verified": None},
            "ned@example.com": {"email_verified": False},
        },
        userinfo_claims={
            "lu@example.com": {"email_verified": True},
            "max@example.com": {"email": "other@example.com", "email_verified": True},
            "ned@example.com": {"email_verified": True},
        },
    )
    async with signed_in_app(harness_factory, provider) as h:
        assert (await sign_in_at(h, "lu@example.com")).status == 303
        assert await h.ctx.store.find_user_by_email("lu@example.com") is not None
    # ... but not when UserInfo vouches for another address than the ID token's.
    async with signed_in_app(harness_factory, provider) as h:
        page = await sign_in_at(h, "max@example.com")
        await assert_refused(
            h, page, 400, "has not verified this email address", "max@example.com", "other@example.com"
        )
    # ... and an ID token that says `email_verified: false` is not overruled by UserInfo.
    async with signed_in_app(harness_factory, provider) as h:
        page = await sign_in_at(h, "ned@example.com")
        await assert_refused(h, page, 400, "has not verified this email address", "ned@example.com")


async def test_a_provider_without_userinfo(harness_factory, oidc_provider_factory):
    """Without a UserInfo endpoint the claims are in the ID token (oidc-provider then puts them there); an
    ID token without an email then has nowhere else to look."""
    provider = oidc_provider_factory([DEFAULT_REDIRECT_URI], userinfo=False)
    async with signed_in_app(harness_factory, provider) as h:
        assert (await sign_in_at(h, "kim@example.com")).status == 303
    async with signed_in_app(harness_factory, provider) as h:
        page = await sign_in_at(h, "dave")
        await assert_refused(h, page, 400, "gave no email address in the ID token and has no UserInfo endpoint")


@pytest.mark.parametrize(
    ("fault", "status", "says"),
    [
        ({"status": 503}, 503, "UserInfo endpoint answered 503"),
        ({"status": 401}, 400, "UserInfo endpoint answered 401"),
        ({"reset": True}, 503, "UserInfo endpoint cannot be reached"),
        ({"body": "{not json"}, 400, "UserInfo response is not a JSON object"),
        ({"body": '["kim@example.com"]'}, 400, "UserInfo response is not a JSON object"),
        ({"body": '{"sub": "kim@example.com"}', "content_type": "text/html"}, 400, "not JSON (text/html)"),
    ],
)
async def test_userinfo_failures_sign_nobody_in(harness_factory, oidc_provider_factory, fault, status, says):
    provider = oidc_provider_factory([DEFAULT_REDIRECT_URI], userinfo_fault=fault)
    async with signed_in_app(harness_factory, provider) as h:
        page = await sign_in_at(h, "kim@example.com")
        await assert_refused(h, page, status, says, "kim@example.com")


async def test_a_userinfo_response_too_large_signs_nobody_in(harness_factory, oidc_provider_factory):
    big = "x" * (oidc.MAX_DOCUMENT_BYTES + 1)  # a real claim, just too long (the provider sends it)
    provider = oidc_provider_factory([DEFAULT_REDIRECT_URI], userinfo_claims={"kim@example.com": {"name": big}})
    async with signed_in_app(harness_factory, provider) as h:
        page = await sign_in_at(h, "kim@example.com")
        await assert_refused(h, page, 400, "UserInfo response is larger than", "kim@example.com")


async def test_a_userinfo_endpoint_that_never_answers(harness_factory, oidc_provider_factory, monkeypatch):
    monkeypatch.setattr(oidc, "USERINFO_TIMEOUT_SECONDS", 0.5)  # a watchdog: the endpoint never answers
    provider = oidc_provider_factory([DEFAULT_REDIRECT_URI], userinfo_fault={"hang": True})
    async with signed_in_app(harness_factory, provider) as h:
        page = await sign_in_at(h, "kim@example.com")
        await assert_refused(h, page, 503, "UserInfo endpoint did not answer in time", "kim@example.com")


async def test_a_signed_userinfo_response_is_refused_clearly(harness_factory, oidc_provider_factory):
    """A client registered for signed UserInfo (OIDC Core §5.3.2, `application/jwt`): authmd reads plain JSON
    only, and says so rather than failing obscurely."""
    provider = oidc_provider_factory([DEFAULT_REDIRECT_URI], userinfo_signed_response_alg="RS256")
    async with signed_in_app(harness_factory, provider) as h:
        page = await sign_in_at(h, "kim@example.com")
        await assert_refused(h, page, 400, "signed or encrypted UserInfo (application/jwt)", "kim@example.com")


@pytest.mark.parametrize(
    ("body", "says"),
    [(b"<html>maintenance</html>", "not an object"), (b'{"x":"' + b"a" * 300_000 + b'"}', "larger than 262144 bytes")],
    ids=["not-json", "too-large"],
)
async def test_a_discovery_document_that_cannot_be_read_is_a_clear_503(harness_factory, body: bytes, says: str):
    """The operator's provider answering its discovery URL with something that is not JSON (a login
    page, a proxy's error), or with more than we read, is 'Please try again' (503), never a 500, and
    never read past the limit."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotJson(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotJson)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        issuer = f"http://127.0.0.1:{server.server_address[1]}"
        settings = {"oidc_issuer": issuer, "oidc_client_id": "c", "oidc_client_secret": Secret("s" * 20)}
        async with harness_factory(**settings) as h:
            r = await h.client.get(f"{h.settings.issuer}/login?return_to=/account", follow_redirects=False)
            assert r.status_code == 503 and "Please try again" in r.text and says in r.text, r.text
    finally:
        server.shutdown()
        server.server_close()
