"""The authorization endpoint, the consent page and the authorization-code and refresh grants (an MCP
client's path), in-process on the real app with dev mode's sign-in, and each check's failure path.

Clients: a registered one (``[[clients]]``) and a Client ID Metadata Document served by a real HTTP
host on loopback (dev mode fetches http; ``cimd_allow_private`` admits 127.0.0.1)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest

from app.config import OAuthClient, Secret
from app.keys import hash_secret
from tests.conftest import Harness, HarnessFactory
from tests.helpers import DevHuman, Page
from tests.outbound.test_cimd import Host, running

pytestmark = pytest.mark.anyio

REDIRECT = "http://127.0.0.1:5173/callback"
CLIENT = OAuthClient(client_id="desk-app", client_name="Desk App", redirect_uris=[REDIRECT])
SECRET = "s3cret-for-the-desk-server-000000"
CONFIDENTIAL = OAuthClient(
    client_id="desk-server",
    client_name="Desk Server",
    redirect_uris=["https://desk.example/cb"],
    token_endpoint_auth_method="client_secret_basic",
    client_secret=Secret(hash_secret(SECRET)),
)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Browser(DevHuman):
    """A person's browser that stops at the answer to the client (a redirect off our origin)."""

    async def go(self, url: str, *, until: str = REDIRECT) -> Page | str:
        for _ in range(10):
            r = await self._send("GET", url)
            if r.status_code not in (302, 303):
                return Page(r)
            location = r.headers["location"]
            if location.startswith(until):
                return location
            url = absolute(self.issuer, location)
        raise AssertionError("too many redirects")

    async def submit(self, path: str, fields: dict[str, str], *, until: str = REDIRECT) -> Page | str:
        r = await self._send("POST", f"{self.issuer}{path}", data=fields)
        if r.status_code not in (302, 303):
            return Page(r)
        location = r.headers["location"]
        if location.startswith(until):
            return location
        return await self.go(absolute(self.issuer, location), until=until)


def absolute(issuer: str, location: str) -> str:
    parts = urlsplit(issuer)
    return location if location.startswith("http") else f"{parts.scheme}://{parts.netloc}{location}"


def authorize_url(h: Harness, client_id: str = CLIENT.client_id, **params: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "state": "st-123",
        "code_challenge_method": "S256",
        "scope": "notes:read notes:write offline_access",
        "resource": f"{h.settings.issuer}/api/mcp",
        **params,
    }
    return f"{h.settings.issuer}/oauth2/authorize?" + urlencode({k: v for k, v in query.items() if v != ""})


def answer(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def consent(browser: Browser, h: Harness, url: str, email: str = "ada@example.com") -> Page:
    """Open the authorization URL, sign in with the dev form, land on the consent page."""
    page = await browser.go(url)
    assert isinstance(page, Page), page
    if page.title == "Development sign-in":
        fields = page.form("/login/dev")
        page = await browser.submit("/login/dev", {**fields, "email": email})
        assert isinstance(page, Page)
    return page


async def approved(h: Harness, browser: Browser, url: str, *, until: str = REDIRECT) -> dict[str, str]:
    page = await consent(browser, h, url)
    assert page.title.startswith("Connect "), page.text
    location = await browser.submit(
        "/oauth2/consent", {**page.form("/oauth2/consent"), "decision": "approve"}, until=until
    )
    assert isinstance(location, str), location
    return answer(location)


async def redeem(h: Harness, the_code: str, the_verifier: str, **extra: Any) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": the_code,
        "code_verifier": the_verifier,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT.client_id,
        **extra,
    }
    headers = form.pop("headers", None)
    return await h.client.post(
        f"{h.settings.issuer}/oauth2/token", data={k: v for k, v in form.items() if v is not None}, headers=headers
    )


@contextlib.asynccontextmanager
async def served(harness_factory: HarnessFactory, **overrides: Any) -> AsyncIterator[Harness]:
    async with harness_factory(clients=[CLIENT, CONFIDENTIAL], **overrides) as h:
        yield h


async def test_the_whole_flow_code_token_api_refresh(harness_factory):
    async with served(harness_factory) as h:
        browser = Browser(h.client, h.settings.issuer)
        verifier, challenge = pkce()
        page = await consent(browser, h, authorize_url(h, code_challenge=challenge))
        # Who asks (the name with where the answer goes), what it may do, on which resource.
        assert "Desk App" in page.text and "127.0.0.1:5173" in page.text
        assert "notes:write" in page.text and f"{h.settings.issuer}/api" in page.text
        assert "runs on your own computer" in page.text  # a localhost-only client
        csp = page.response.headers["content-security-policy"]
        assert "form-action 'self' http://127.0.0.1:5173" in csp
        location = await browser.submit("/oauth2/consent", {**page.form("/oauth2/consent"), "decision": "approve"})
        assert isinstance(location, str) and location.startswith(REDIRECT + "?")
        got = answer(location)
        assert got["state"] == "st-123" and got["iss"] == h.settings.issuer  # RFC 9207
        r = await redeem(h, got["code"], verifier)
        assert r.status_code == 200, r.text
        body = r.json()
        assert r.headers["cache-control"] == "no-store"
        assert body["token_type"] == "Bearer" and body["scope"] == "notes:read notes:write"
        assert body["refresh_token"].startswith("art_")
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["aud"] == f"{h.settings.issuer}/api" and claims["client_id"] == CLIENT.client_id
        assert claims["reg"] and claims["scope"] == "notes:read notes:write"
        api = f"{h.settings.issuer}/api/notes"
        auth = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await h.client.post(api, json={"text": "from MCP"}, headers=auth)).status_code == 201
        assert [n["text"] for n in (await h.client.get(api, headers=auth)).json()["notes"]] == ["from MCP"]
        # Refresh: rotated; the old one comes back after the grace → the grant dies (RFC 9700 §4.14.2).
        form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": CLIENT.client_id}
        r2 = await h.client.post(f"{h.settings.issuer}/oauth2/token", data=form)
        assert r2.status_code == 200, r2.text
        fresh = r2.json()
        assert fresh["refresh_token"] != body["refresh_token"]
        narrowed = await h.client.post(
            f"{h.settings.issuer}/oauth2/token",
            data={**form, "refresh_token": fresh["refresh_token"], "scope": "notes:read"},
        )
        assert narrowed.status_code == 200 and narrowed.json()["scope"] == "notes:read"
        h.clock.advance(h.settings.refresh_grace_seconds + 1)
        reused = await h.client.post(f"{h.settings.issuer}/oauth2/token", data=form)
        assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
        gone = await h.client.get(api, headers={"Authorization": f"Bearer {narrowed.json()['access_token']}"})
        assert gone.status_code == 401


async def test_a_replayed_code_is_refused_and_revokes_what_it_issued(harness_factory):
    async with served(harness_factory) as h:
        verifier, challenge = pkce()
        got = await approved(h, Browser(h.client, h.settings.issuer), authorize_url(h, code_challenge=challenge))
        first = await redeem(h, got["code"], verifier)
        assert first.status_code == 200
        again = await redeem(h, got["code"], verifier)
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
        auth = {"Authorization": f"Bearer {first.json()['access_token']}"}
        assert (await h.client.get(f"{h.settings.issuer}/api/notes", headers=auth)).status_code == 401
        refreshed = await h.client.post(
            f"{h.settings.issuer}/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first.json()["refresh_token"],
                "client_id": "desk-app",
            },
        )
        assert refreshed.json()["error"] == "invalid_grant"


async def test_the_code_is_bound_to_client_redirect_verifier_resource_and_time(harness_factory):
    async with served(harness_factory) as h:
        browser = Browser(h.client, h.settings.issuer)
        verifier, challenge = pkce()
        got = await approved(h, browser, authorize_url(h, code_challenge=challenge))
        code = got["code"]
        for extra, error in [
            ({"code_verifier": pkce()[0]}, "invalid_grant"),  # another verifier (RFC 7636 §4.6)
            ({"code_verifier": "short"}, "invalid_grant"),
            ({"redirect_uri": "http://127.0.0.1:5173/other"}, "invalid_grant"),
            ({"redirect_uri": None}, "invalid_grant"),  # it was sent in the request: required (§4.1.3)
            ({"client_id": "someone-else"}, "invalid_client"),
            ({"resource": "https://elsewhere.example/api"}, "invalid_target"),
            ({"code": code + "x"}, "invalid_grant"),
            ({"code_verifier": None}, "invalid_request"),
        ]:
            r = await redeem(h, code, verifier, **extra)
            assert r.json()["error"] == error, (extra, r.text)
            assert r.status_code == (401 if error == "invalid_client" else 400)
        # None of those spent the code; past its 60 seconds it is dead.
        h.clock.advance(61)
        late = await redeem(h, code, verifier)
        assert (late.status_code, late.json()["error"]) == (400, "invalid_grant")


async def test_a_code_for_one_client_is_refused_to_another(harness_factory):
    """Code injection across clients: the confidential client presents a code issued to the public one."""
    async with served(harness_factory) as h:
        verifier, challenge = pkce()
        got = await approved(h, Browser(h.client, h.settings.issuer), authorize_url(h, code_challenge=challenge))
        basic = base64.b64encode(f"desk-server:{SECRET}".encode()).decode()
        r = await redeem(h, got["code"], verifier, client_id=None, headers={"Authorization": f"Basic {basic}"})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        wrong = base64.b64encode(b"desk-server:wrong").decode()
        r = await redeem(h, got["code"], verifier, client_id=None, headers={"Authorization": f"Basic {wrong}"})
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
        assert r.headers["www-authenticate"].startswith("Basic ")
        ok = await redeem(h, got["code"], verifier)  # the rightful client still can
        assert ok.status_code == 200


async def test_a_confidential_client_must_authenticate(harness_factory):
    async with served(harness_factory) as h:
        r = await h.client.post(
            f"{h.settings.issuer}/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": "x",
                "code_verifier": "y" * 43,
                "client_id": "desk-server",
            },
        )
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"code_challenge": ""}, "invalid_request"),  # PKCE required
        ({"code_challenge_method": "plain"}, "invalid_request"),  # downgrade
        ({"code_challenge_method": ""}, "invalid_request"),  # a missing method means plain
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": ""}, "invalid_request"),
        ({"resource": "https://elsewhere.example/api"}, "invalid_target"),
        ({"resource": "RESOURCE/../admin"}, "invalid_target"),
        ({"scope": "notes:read admin:everything"}, "invalid_scope"),
        ({"prompt": "none"}, "interaction_required"),
        ({"response_mode": "fragment"}, "invalid_request"),
    ],
)
async def test_request_errors_go_back_to_the_client_with_state_and_iss(harness_factory, params, error):
    async with served(harness_factory) as h:
        params = {k: v.replace("RESOURCE", f"{h.settings.issuer}/api") for k, v in params.items()}
        query = {"code_challenge": pkce()[1], **params}
        r = await h.client.get(authorize_url(h, **query), follow_redirects=False)
        assert r.status_code == 303
        location = r.headers["location"]
        assert location.startswith(REDIRECT + "?")
        got = answer(location)
        assert (got["error"], got["state"], got["iss"]) == (error, "st-123", h.settings.issuer)
        assert "code" not in got


@pytest.mark.parametrize(
    "params",
    [
        {"redirect_uri": "https://attacker.example/cb"},  # open redirect
        {"redirect_uri": "http://127.0.0.1:5173/callback/../evil"},
        {"redirect_uri": "http://localhost:5173/callback"},  # not the registered string
        {"client_id": "nobody"},
        {"client_id": ""},
    ],
)
async def test_a_bad_client_or_redirect_uri_is_our_page_never_a_redirect(harness_factory, params):
    async with served(harness_factory) as h:
        r = await h.client.get(authorize_url(h, code_challenge=pkce()[1], **params), follow_redirects=False)
        assert r.status_code in (400, 401), r.text
        assert "location" not in r.headers
        assert "text/html" in r.headers["content-type"]


async def test_a_loopback_ip_redirect_matches_on_any_port(harness_factory):
    """RFC 8252 §7.3: a native app's loopback redirect may come back on whatever port it got."""
    async with served(harness_factory) as h:
        other = "http://127.0.0.1:61234/callback"
        verifier, challenge = pkce()
        url = authorize_url(h, code_challenge=challenge, redirect_uri=other)
        got = await approved(h, Browser(h.client, h.settings.issuer), url, until=other)
        assert (await redeem(h, got["code"], verifier, redirect_uri=other)).status_code == 200


async def test_deny_returns_access_denied_and_grants_nothing(harness_factory):
    async with served(harness_factory) as h:
        browser = Browser(h.client, h.settings.issuer)
        page = await consent(browser, h, authorize_url(h, code_challenge=pkce()[1]))
        location = await browser.submit("/oauth2/consent", {**page.form("/oauth2/consent"), "decision": "deny"})
        assert isinstance(location, str)
        got = answer(location)
        assert (got["error"], got["state"], got["iss"]) == ("access_denied", "st-123", h.settings.issuer)
        # The request is spent: posting approve for it now finds nothing.
        again = await browser.submit("/oauth2/consent", {**page.form("/oauth2/consent"), "decision": "approve"})
        assert isinstance(again, Page) and again.status == 400


async def test_consent_needs_the_sessions_csrf_token(harness_factory):
    """Consent CSRF: a cross-site form cannot approve (no CSRF token; nor another browser's request)."""
    async with served(harness_factory) as h:
        browser = Browser(h.client, h.settings.issuer)
        page = await consent(browser, h, authorize_url(h, code_challenge=pkce()[1]))
        fields = page.form("/oauth2/consent")
        forged = await browser.submit("/oauth2/consent", {**fields, "csrf": "forged", "decision": "approve"})
        assert isinstance(forged, Page) and forged.status == 400
        other = Browser(h.client, h.settings.issuer)
        await consent(other, h, authorize_url(h, code_challenge=pkce()[1]), email="eve@example.com")
        stranger = await other.submit("/oauth2/consent", {**fields, "decision": "approve"})
        assert isinstance(stranger, Page) and stranger.status == 400
        # The genuine form still works.
        ok = await browser.submit("/oauth2/consent", {**fields, "decision": "approve"})
        assert isinstance(ok, str) and "code" in answer(ok)


async def test_a_client_metadata_document_client(harness_factory):
    with running(Host()) as host:
        client_id = host.url("/mcp-client.json")
        host.serve(
            {
                "client_id": client_id,
                "client_name": "Notes MCP Client",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            },
            "/mcp-client.json",
        )
        async with served(harness_factory, cimd_allow_private=True) as h:
            verifier, challenge = pkce()
            url = authorize_url(h, client_id=client_id, code_challenge=challenge)
            browser = Browser(h.client, h.settings.issuer)
            page = await consent(browser, h, url)
            assert "Notes MCP Client" in page.text and f"described by 127.0.0.1:{host.port}" in page.text
            location = await browser.submit("/oauth2/consent", {**page.form("/oauth2/consent"), "decision": "approve"})
            assert isinstance(location, str)
            r = await redeem(h, answer(location)["code"], verifier, client_id=client_id)
            assert r.status_code == 200, r.text
            assert jwt.decode(r.json()["access_token"], options={"verify_signature": False})["client_id"] == client_id
        # A document whose client_id is not its URL, and a private address the operator did not allow.
        host.serve({"client_id": "https://other.example/c.json", "redirect_uris": [REDIRECT]}, "/mismatch.json")
        async with served(harness_factory, cimd_allow_private=True) as h:
            r = await h.client.get(authorize_url(h, client_id=host.url("/mismatch.json"), code_challenge=challenge))
            assert r.status_code == 401 and "location" not in r.headers
        async with served(harness_factory) as h:
            before = host.hits
            r = await h.client.get(authorize_url(h, client_id=client_id, code_challenge=challenge))
            assert r.status_code == 401 and host.hits == before  # refused before any request


async def test_the_account_page_lists_and_revokes_the_client(harness_factory):
    async with served(harness_factory) as h:
        browser = Browser(h.client, h.settings.issuer)
        verifier, challenge = pkce()
        got = await approved(h, browser, authorize_url(h, code_challenge=challenge))
        tokens = (await redeem(h, got["code"], verifier)).json()
        page = await browser.go(f"{h.settings.issuer}/account")
        assert isinstance(page, Page) and "Desk App" in page.text
        confirm = await browser.submit("/account/revoke", page.form("/account/revoke"))
        assert isinstance(confirm, Page)
        await browser.submit("/account/revoke/confirm", confirm.form("/account/revoke/confirm"))
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await h.client.get(f"{h.settings.issuer}/api/notes", headers=auth)).status_code == 401
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "desk-app"}
        assert (await h.client.post(f"{h.settings.issuer}/oauth2/token", data=form)).json()["error"] == "invalid_grant"


async def test_an_agents_refresh_token_is_no_clients_and_a_clients_is_no_agents(harness_factory):
    """The two worlds share refresh-token machinery, never tokens: an agent's refresh token at the token
    endpoint (under any client) is invalid_grant and its grant lives on; an MCP client's refresh token
    at the identity endpoint is refused too."""
    from tests.helpers import DevHuman, claimed

    async with served(harness_factory) as h:
        _, done = await claimed(h.agent(), DevHuman(h.client, h.settings.issuer))
        agent_refresh = done["identity"]["refresh_token"]["value"]
        form = {"grant_type": "refresh_token", "refresh_token": agent_refresh, "client_id": CLIENT.client_id}
        r = await h.client.post(f"{h.settings.issuer}/oauth2/token", data=form)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        again = await h.agent().refresh(agent_refresh)  # not revoked by the attempt
        assert again["type"] == "refresh"

        verifier, challenge = pkce()
        got = await approved(h, Browser(h.client, h.settings.issuer), authorize_url(h, code_challenge=challenge))
        client_refresh = (await redeem(h, got["code"], verifier)).json()["refresh_token"]
        r = await h.client.post(
            f"{h.settings.issuer}/agent/identity", json={"type": "refresh", "refresh_token": client_refresh}
        )
        assert r.status_code == 400, r.text


async def test_a_repeated_parameter_is_refused(harness_factory):
    """RFC 6749 §3.1: a parameter sent twice. Before the client and its redirect URI are trusted (and
    for ``state``, which could not be sent back as sent) it is our own page; after, a redirect."""
    async with served(harness_factory) as h:
        url = authorize_url(h, code_challenge=pkce()[1])
        r = await h.client.get(url + "&code_challenge_method=plain", follow_redirects=False)
        assert r.status_code == 303 and answer(r.headers["location"])["error"] == "invalid_request"
        for twice in ("&client_id=desk-app", f"&redirect_uri={REDIRECT}", "&state=other"):
            r = await h.client.get(url + twice, follow_redirects=False)
            assert r.status_code == 400 and "location" not in r.headers, twice


async def test_a_step_up_keeps_what_was_allowed_before_unless_revoked(harness_factory):
    """Incremental authorization: a client that asks for the missing scope alone (as the TypeScript SDK
    does on insufficient_scope) gets it added to what the human allowed before; the page says which is
    new. The earlier approval's tokens die (a new generation). After a revocation nothing is kept."""
    async with served(harness_factory) as h:
        browser = Browser(h.client, h.settings.issuer)
        verifier, challenge = pkce()
        got = await approved(h, browser, authorize_url(h, code_challenge=challenge, scope="notes:read"))
        first = (await redeem(h, got["code"], verifier)).json()
        assert first["refresh_token"]  # the registered client declares the refresh grant
        assert first["scope"] == "notes:read"
        verifier, challenge = pkce()
        page = await consent(browser, h, authorize_url(h, code_challenge=challenge, scope="notes:delete"))
        assert "It keeps what you allowed before" in page.text and "this replaces that connection" in page.text
        assert "It keeps access until you revoke it" in page.text  # the refresh token is kept too
        location = await browser.submit("/oauth2/consent", {**page.form("/oauth2/consent"), "decision": "approve"})
        assert isinstance(location, str)
        second = (await redeem(h, answer(location)["code"], verifier)).json()
        assert second["scope"] == "notes:read notes:delete"
        old = await h.client.get(
            f"{h.settings.issuer}/api/notes", headers={"Authorization": f"Bearer {first['access_token']}"}
        )
        assert old.status_code == 401  # the earlier approval's token died with its generation
        page = await browser.go(f"{h.settings.issuer}/account")
        assert isinstance(page, Page)
        confirm = await browser.submit("/account/revoke", page.form("/account/revoke"))
        assert isinstance(confirm, Page)
        await browser.submit("/account/revoke/confirm", confirm.form("/account/revoke/confirm"))
        verifier, challenge = pkce()
        page = await consent(browser, h, authorize_url(h, code_challenge=challenge, scope="notes:write"))
        assert "It keeps what you allowed before" not in page.text
        location = await browser.submit("/oauth2/consent", {**page.form("/oauth2/consent"), "decision": "approve"})
        assert isinstance(location, str)
        third = (await redeem(h, answer(location)["code"], verifier)).json()
        assert third["scope"] == "notes:write"


async def test_authorization_requests_per_source_are_capped(harness_factory, monkeypatch):
    """Each request may name a metadata document URL the server must fetch: one source gets
    REQUESTS_PER_SOURCE per window, then our own 429 page (never a redirect), and nothing is fetched."""
    from app.flows import authorize

    monkeypatch.setattr(authorize, "REQUESTS_PER_SOURCE", 5)
    async with served(harness_factory) as h:
        url = authorize_url(h, code_challenge=pkce()[1])
        answers = [await h.client.get(url, follow_redirects=False) for _ in range(7)]
        assert [r.status_code for r in answers] == [303] * 5 + [429] * 2
        assert "location" not in answers[-1].headers and "retry-after" in answers[-1].headers


@pytest.mark.parametrize(
    ("members", "fragment"),
    [
        ({"client_name": "\u202eevil"}, "client_name"),
        ({"grant_types": ["client_credentials"]}, "grant_types"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "never a redirect"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "token_endpoint_auth_method"),
    ],
)
async def test_a_metadata_document_is_checked_as_a_registration_is(harness_factory, members, fragment):
    """The document's members pass the same RFC 7591 checks as a dynamic registration; a bad one is our
    own page (invalid_client), never a redirect."""
    with running(Host()) as host:
        client_id = host.url("/c.json")
        host.serve({"client_id": client_id, "redirect_uris": [REDIRECT], **members}, "/c.json")
        async with served(harness_factory, cimd_allow_private=True) as h:
            r = await h.client.get(authorize_url(h, client_id=client_id, code_challenge=pkce()[1]))
            assert r.status_code == 401 and "location" not in r.headers
            assert fragment in r.text


async def test_sizes_and_caps_of_the_front_channel(harness_factory):
    """A browser holds at most MAX_HELD_AUTHORIZATIONS requests (the oldest drops out); ``state`` has a
    size limit (our page, never echoed); an oversized code is invalid_grant."""
    from app.flows.authorize import MAX_STATE
    from app.flows.session import MAX_HELD_AUTHORIZATIONS

    async with served(harness_factory) as h:
        browser = Browser(h.client, h.settings.issuer)
        first = await consent(browser, h, authorize_url(h, code_challenge=pkce()[1]))
        oldest = first.form("/oauth2/consent")
        for _ in range(MAX_HELD_AUTHORIZATIONS):
            newest = await consent(browser, h, authorize_url(h, code_challenge=pkce()[1]))
        dropped = await browser.submit("/oauth2/consent", {**oldest, "decision": "approve"})
        assert isinstance(dropped, Page) and dropped.status == 400
        kept = await browser.submit("/oauth2/consent", {**newest.form("/oauth2/consent"), "decision": "approve"})
        assert isinstance(kept, str) and "code" in answer(kept)

        too_long = authorize_url(h, code_challenge=pkce()[1], state="s" * (MAX_STATE + 1))
        r = await h.client.get(too_long, follow_redirects=False)
        assert r.status_code == 400 and "location" not in r.headers and "s" * 100 not in r.text
        ok = await h.client.get(
            authorize_url(h, code_challenge=pkce()[1], state="s" * MAX_STATE), follow_redirects=False
        )
        assert ok.status_code == 303

        huge = await redeem(h, "mac_" + "x" * 1_000, pkce()[0])
        assert (huge.status_code, huge.json()["error"]) == (400, "invalid_grant")
