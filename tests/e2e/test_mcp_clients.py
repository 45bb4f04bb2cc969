"""The two official MCP SDK clients, unmodified, against the real server (issue 17): the Python ``mcp``
client (``OAuthClientProvider``) and the TypeScript ``@modelcontextprotocol/sdk`` client
(``StreamableHTTPClientTransport`` with an ``OAuthClientProvider``, tests/mcp_clients/client.mjs).

One deployment for the module, as an operator would run it: `authmd serve` signing humans in at a real
OpenID Connect provider (tests/oidc, oidc-provider in its default claim placement), ``cimd_allow_private``
on, the test CA in ``SSL_CERT_FILE`` so that the server trusts the HTTPS host of the clients' metadata
documents (a trustme certificate for 127.0.0.1, tests/tls.py), and dynamic client registration on
(``dcr_enabled``: the metadata lists ``registration_endpoint`` beside
``client_id_metadata_document_supported``). Each test is one human with one client, in real headless
Chromium:

1. the client calls ``{issuer}/api/mcp`` with no token: 401 with ``resource_metadata`` and ``scope``; it
   reads the RFC 9728 document and the RFC 8414 metadata, and gets its ``client_id`` (``registration``):
   ``cimd``, it names itself by its Client ID Metadata Document (``client_id`` = the document's https URL,
   and no registration request); ``dcr``, it is given no document URL and falls back to RFC 7591 dynamic
   registration (``POST /oauth2/register``, ``client_id`` ``dcr_…``); its redirect URI is a loopback listener;
2. the human signs in at the provider and reads authmd's consent page (the client's name, where the answer
   goes, who describes it, or that it registered itself: unverified), then clicks Allow; the client redeems
   the code;
3. tool calls; ``403 insufficient_scope`` and what the SDK makes of it (a step-up, or not); a refresh
   through the ``refresh_token`` grant;
4. the human revokes the client on the account page: the next call is refused (401) and the refresh fails.

The ``cimd`` runs go through every step; the ``dcr`` runs only through 1, 2, one tool call and 4 (what
differs between the two is how the client got its ``client_id``, not what it does with its tokens).

What each SDK does on a 401 and a 403 is asserted on the wire (every request it made, as its own HTTP
client saw it), never assumed:

- Python ``mcp`` 2.3.0: a 401 starts a new authorization (no refresh first); an access token past its
  ``expires_in`` (by the client's own clock) is refreshed before the request, the only way it refreshes;
  a 403 ``insufficient_scope`` is a step-up by itself: a new authorization for the scopes it asked before
  plus the challenged one, then the call again.
- TypeScript SDK 1.32.2: it does not track ``expires_in``; a 401 is answered by a refresh when it holds a
  refresh token, else by a new authorization; a 403 ``insufficient_scope`` runs the same ``auth()`` with
  the challenged scope alone, so with a refresh token it refreshes (which cannot widen the scopes), gets the
  same 403 and throws "Server returned 403 after trying upscoping": no step-up; without one it asks the
  human for that scope alone, and authmd's incremental authorization keeps what it had.

Neither SDK asks first for the scope it is configured with (``CONFIGURED_SCOPE``): both take the 401's
``scope`` (the MCP authorization spec's scope selection), which authmd sets to ``notes:read``.

Time: access tokens live ``ACCESS_TOKEN_TTL`` seconds, so the Python client's two refreshes (one that
works, one after the revocation that fails) wait about that long each. The TypeScript client refreshes
only when the server refuses its token: the test revokes the access token alone (RFC 7009: revoking an
access token kills that token, not its grant), which gets at once the 401 ``invalid_token`` an expired one
would get. No sleeps: every wait is a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx2
import jwt
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from playwright.async_api import Page, expect
from pydantic import AnyUrl

from tests.browser import NewContext, require_browser, screenshot
from tests.e2e.conftest import POLL_INTERVAL, SERVERS, ServerProcess
from tests.mcp_sdk_clients import (
    AuthorizationAbandoned,
    Exchanges,
    LoopbackCallback,
    MemoryTokenStorage,
    NodeMcpClient,
    pinned_sdk_version,
    raised,
    require_sdk_client,
    www_field,
)
from tests.oidc_server import OidcProvider
from tests.outbound.test_cimd import Host, running
from tests.tls import TlsFiles

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

T = TypeVar("T")

# Short, so that the Python client's refreshes wait little (it refreshes only past expires_in), and long
# enough for the longest step between getting a token and using it that must not see it expire: the
# human's revocation in the browser (~0.5 s here, ~0.9 s with both cores busy) plus the up to one second
# that the server's whole-second `iat`/`exp` take off the lifetime the client counts from `expires_in`.
# (The config accepts 1, which would leave a token between 0 and 1 s of life at the server.)
ACCESS_TOKEN_TTL = 3
# How a client gets its client_id at authmd: "cimd" = by its Client ID Metadata Document; "dcr" = by RFC 7591
# dynamic registration, the fallback of a client given no metadata document URL.
REGISTRATIONS = ["cimd", "dcr"]
CONFIGURED_SCOPE = "notes:read notes:write"  # the scope each client is configured with
TS_SDK_VERSION = "1.32.2"
READ, WRITE, DELETE, OFFLINE = "notes:read", "notes:write", "notes:delete", "offline_access"
UNVERIFIED = "registered itself: unverified"  # the consent page's tag of a dynamically registered client
KEEPS = "It keeps what you allowed before:"


# --- the deployment ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    server: ServerProcess
    oidc: OidcProvider
    cimd: Host  # the https host of the clients' metadata documents (a certificate from the test CA)

    @property
    def mcp_url(self) -> str:
        return f"{self.server.issuer}/api/mcp"

    @property
    def metadata_url(self) -> str:
        return f"{self.server.origin}/.well-known/oauth-protected-resource/api/mcp"

    @property
    def as_metadata_url(self) -> str:
        return f"{self.server.origin}/.well-known/oauth-authorization-server"

    @property
    def registration_endpoint(self) -> str:
        return f"{self.server.issuer}/oauth2/register"

    @property
    def resource(self) -> str:
        return f"{self.server.issuer}/api"


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider, tls_files: TlsFiles
) -> Iterator[Deployment]:
    require_browser()
    require_sdk_client()
    with running(Host(), tls=tls_files.server_context()) as cimd:
        oidc_client_id, oidc_secret = f"authmd-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
        env = {
            "AUTHMD_POW_MODE": "off",
            "AUTHMD_OIDC_ISSUER": oidc_provider.issuer,
            "AUTHMD_OIDC_CLIENT_ID": oidc_client_id,
            "AUTHMD_OIDC_CLIENT_SECRET": oidc_secret,
            "AUTHMD_OIDC_NAME": "Test IdP",
            "AUTHMD_CIMD_ALLOW_PRIVATE": "true",
            # On for every run: the cimd runs show that a client with a metadata document still uses it.
            "AUTHMD_DCR_ENABLED": "true",
            "AUTHMD_ACCESS_TOKEN_TTL_SECONDS": str(ACCESS_TOKEN_TTL),
            # OpenSSL's variable for the CA bundle: the server's outbound https must trust the test CA.
            "SSL_CERT_FILE": str(tls_files.ca_cert),
        }
        server = ServerProcess(tmp_path_factory.mktemp("mcp-clients-server"), env)
        callback = f"{server.origin}/oidc/callback"
        oidc_provider.register_client([callback], client_id=oidc_client_id, client_secret=oidc_secret)
        server.start()
        try:
            metadata = httpx2.get(f"{server.origin}/.well-known/oauth-authorization-server").json()
            assert metadata["client_id_metadata_document_supported"] is True
            assert metadata["registration_endpoint"] == f"{server.issuer}/oauth2/register"
            yield Deployment(server=server, oidc=oidc_provider, cimd=cimd)
        finally:
            server.stop()


@pytest.fixture
def stack(deployment: Deployment, request: pytest.FixtureRequest) -> Deployment:
    """The module's deployment, with its server log in this test's failure report."""
    request.node.stash[SERVERS] = [deployment.server]
    return deployment


# --- how the client names itself ---------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """A dynamic client registration request, as the SDK's own HTTP client saw it."""

    url: str
    status: int
    sent: dict[str, Any]  # the client metadata the SDK sent
    answer: dict[str, Any] | None  # the server's JSON answer


@dataclass
class ClientIdentity:
    """How a client gets its client_id at authmd (``registration``), and what the test checks of it."""

    registration: str
    client_name: str
    client_metadata_url: str | None  # the client_id of a metadata document client
    client_id: str = ""  # once ``learn`` saw how authmd came to know the client

    @classmethod
    def new(cls, stack: Deployment, registration: str, sdk: str) -> ClientIdentity:
        name = f"Notes helper ({sdk} MCP SDK)"
        if registration == "cimd":
            url = stack.cimd.url(f"/clients/{sdk.lower()}-{secrets.token_hex(4)}/metadata.json")
            assert url.startswith("https://127.0.0.1:")
            return cls(registration, name, url)
        if registration == "dcr":
            return cls(registration, name, None)
        raise ValueError(f"unknown registration {registration!r}")

    def publish(self, stack: Deployment, redirect_uri: str, *, refresh: bool = True) -> None:
        """Make the identity usable once the client's redirect URI is known: its metadata document (a
        dynamically registered client brings its own metadata). ``refresh``: the client declares the
        refresh_token grant (authmd then issues refresh tokens)."""
        if self.client_metadata_url is not None:
            document = {
                "client_id": self.client_metadata_url,
                "client_name": self.client_name,
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"] if refresh else ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "application_type": "native",
            }
            path = urlsplit(self.client_metadata_url).path
            stack.cimd.serve(document, path, headers={"Cache-Control": "max-age=60"})

    def learn(self, stack: Deployment, redirect_uri: str, registrations: list[Registration]) -> Registration | None:
        """The client_id the SDK got, from every registration request it made (before it sent the human):
        none for a metadata document client, one good one for a dynamically registered client (returned)."""
        if self.client_metadata_url is not None:
            assert registrations == [], "a client with a metadata document registered dynamically"
            self.client_id = self.client_metadata_url
            return None
        assert [(r.url, r.status) for r in registrations] == [(stack.registration_endpoint, 201)], registrations
        registration = registrations[0]
        sent, answer = registration.sent, registration.answer
        assert sent["client_name"] == self.client_name and sent["redirect_uris"] == [redirect_uri]
        assert answer is not None and answer["client_id"].startswith("dcr_")
        assert answer["token_endpoint_auth_method"] == "none" and "client_secret" not in answer
        assert answer["client_name"] == self.client_name and answer["redirect_uris"] == [redirect_uri]
        assert answer["application_type"] == "native"  # sent, or inferred from the loopback redirect URI
        assert answer["grant_types"] == ["authorization_code", "refresh_token"]
        self.client_id = answer["client_id"]
        return registration

    def check_known(self, stack: Deployment) -> None:
        """authmd learnt the client the way it should (once it showed the consent page): it fetched the
        metadata document; a registered client's document it never looked for."""
        if self.client_metadata_url is not None:
            url = urlsplit(self.client_metadata_url)
            assert (url.path, url.netloc) in stack.cimd.requests, stack.cimd.requests

    def check_request(self, params: dict[str, str]) -> None:
        """The authorization request names the client as it should."""
        assert self.client_id, "learn() first"
        assert params["client_id"] == self.client_id


# --- the human, in Chromium --------------------------------------------------------------------------


@dataclass
class Consent:
    url: str  # the authorization request
    heading: str
    details: dict[str, str]  # the page's <dl>: Application, Client ID, Sends you back to, Resource
    scopes: set[str]  # the scope codes it lists as asked for
    kept: set[str]  # the scope codes it lists as kept from the earlier approval
    text: str


@dataclass
class Human:
    """One person at one browser: signs in at the provider when asked, reads the consent page, clicks."""

    page: Page
    stack: Deployment
    login: str
    label: str  # for screenshot names
    consents: list[Consent] = field(default_factory=list)

    async def approve(self, url: str) -> Consent:
        """Open the authorization request, sign in if asked, read the consent page and click Allow; back
        once the browser is at the client's redirect URI."""
        redirect_uri = dict(parse_qsl(urlsplit(url).query))["redirect_uri"]
        await self.page.goto(url)
        if self.page.url.startswith(self.stack.oidc.issuer + "/"):
            await self.page.locator('input[name="login"]').fill(self.login)
            await self.page.locator('input[name="password"]').fill("any-password")
            await self.page.get_by_role("button", name="Sign-in").click()
            await self.page.wait_for_url(lambda u: u.startswith(self.stack.server.origin + "/"))
        heading = await self.page.locator("main h1").first.inner_text()
        text = await self.page.inner_text("main")
        assert heading.startswith("Connect "), f"not the consent page at {self.page.url}:\n{text}"
        keys = await self.page.locator("main dl dt").all_inner_texts()
        values = await self.page.locator("main dl dd").all_inner_texts()
        asked = await self.page.locator('main p:text-is("It asks to:") + ul li code').all_inner_texts()
        kept = await self.page.locator(f'main p:text-is("{KEEPS}") + ul li code').all_inner_texts()
        consent = Consent(url, heading, dict(zip(keys, values, strict=True)), set(asked), set(kept), text)
        self.consents.append(consent)
        await screenshot(self.page, f"mcp-{self.label}-consent-{len(self.consents)}")
        await self.page.get_by_role("button", name="Allow").click()
        await self.page.wait_for_url(lambda u: u.startswith(redirect_uri + "?"))
        return consent

    async def revoke(self, client_name: str) -> None:
        """On the account page: Revoke… on the client's row, then the confirmation."""
        await self.page.goto(f"{self.stack.server.issuer}/account")
        row = self.page.locator("ul.grants li", has_text=client_name)
        assert "active" in await row.inner_text()
        await screenshot(self.page, f"mcp-{self.label}-account")
        await row.get_by_role("button", name="Revoke…").click()
        await expect(self.page.locator("main h1")).to_have_text("Revoke this agent?")
        assert client_name in await self.page.inner_text("main")
        await self.page.get_by_role("button", name="Revoke access").click()
        await self.page.wait_for_url(f"{self.stack.server.issuer}/account")
        assert "revoked" in await self.page.locator("ul.grants li", has_text=client_name).inner_text()
        await screenshot(self.page, f"mcp-{self.label}-revoked")


def check_consent(
    consent: Consent, identity: ClientIdentity, redirect_uri: str, scopes: set[str], kept: frozenset[str] = frozenset()
) -> None:
    """The consent page names the client with where the answer goes (a name alone proves nothing) and who
    describes it (or that nobody does), warns that the client is local, lists the scopes asked that the
    client does not have yet, and apart from them those it keeps from the earlier approval."""
    assert consent.heading == f"Connect {identity.client_name} to your account?"
    assert identity.client_name in consent.details["Application"]
    assert consent.details["Sends you back to"] == urlsplit(redirect_uri).netloc
    assert consent.details["Client ID"] == identity.client_id
    if identity.client_metadata_url is not None:
        assert f"described by {urlsplit(identity.client_metadata_url).netloc}" in consent.details["Application"]
        assert UNVERIFIED not in consent.details["Application"]
    else:
        assert UNVERIFIED in consent.details["Application"]
    assert "receives the answer on localhost" in consent.text  # its only redirect URI is loopback
    assert consent.scopes == scopes
    assert consent.kept == kept and (KEEPS in consent.text) == bool(kept)
    assert ("this replaces that connection" in consent.text) == bool(kept)


def authorization_request(url: str, stack: Deployment, identity: ClientIdentity, redirect_uri: str) -> set[str]:
    """Check what every authorization request must carry; the scopes it asks for."""
    assert url.startswith(f"{stack.server.issuer}/oauth2/authorize?")
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["response_type"] == "code" and params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43 and params["state"]
    assert params["resource"] == stack.resource  # the metadata's resource, a parent of /api/mcp
    assert params["redirect_uri"] == redirect_uri
    identity.check_request(params)
    return set(params["scope"].split())


# --- tokens and waiting -----------------------------------------------------------------------------


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def until(condition: Callable[[], T], timeout: float, what: str) -> T:
    """``tests.e2e.conftest.wait_until`` for async tests: poll without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await anyio.sleep(POLL_INTERVAL)


# --- the Python SDK's side -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def mcp_session(
    stack: Deployment, oauth: OAuthClientProvider, exchanges: Exchanges
) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(auth=oauth, event_hooks={"response": [exchanges]}, timeout=30.0) as http,
        streamable_http_client(stack.mcp_url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def refused_session(stack: Deployment, oauth: OAuthClientProvider, exchanges: Exchanges) -> None:
    """Connect and list the notes, when the human does not authorize the client again."""
    try:
        async with mcp_session(stack, oauth, exchanges) as session:
            await session.call_tool("list_notes", {})
    except BaseException as error:
        assert raised(error, AuthorizationAbandoned), error
    else:
        raise AssertionError("the client got through without the human")


def py_registrations(exchanges: Exchanges, stack: Deployment) -> list[Registration]:
    """Every registration request the Python client made (any JSON request that is not JSON-RPC)."""
    return [
        Registration(s.url, s.status, s.sent or {}, s.body)
        for s in exchanges.seen
        if s.sent is not None or s.url == stack.registration_endpoint
    ]


@pytest.mark.parametrize("registration", REGISTRATIONS)
async def test_the_python_sdk_client(stack: Deployment, new_context: NewContext, registration: str) -> None:
    page = await (await new_context()).new_page()
    human = Human(page, stack, f"py-{registration}@example.com", f"python-{registration}")
    identity = ClientIdentity.new(stack, registration, "Python")
    every_step = registration == "cimd"  # the dcr run: registration, consent, one tool call, revocation
    storage, exchanges = MemoryTokenStorage(), Exchanges()
    requested: list[str] = []  # every authorization request the SDK sent the human to
    consenting = True

    async with LoopbackCallback() as callback:
        identity.publish(stack, callback.redirect_uri)

        async def redirect_handler(url: str) -> None:
            requested.append(url)
            if not consenting:
                raise AuthorizationAbandoned(url)
            await human.approve(url)

        async def callback_handler() -> AuthorizationCodeResult:
            query = await callback.next()
            return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

        oauth = OAuthClientProvider(
            server_url=stack.mcp_url,
            client_metadata=OAuthClientMetadata(
                client_name=identity.client_name,
                redirect_uris=[AnyUrl(callback.redirect_uri)],
                grant_types=["authorization_code", "refresh_token"],
                token_endpoint_auth_method="none",
                scope=CONFIGURED_SCOPE,
            ),
            storage=storage,
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
            client_metadata_url=identity.client_metadata_url,
        )

        def asked(index: int) -> set[str]:
            return authorization_request(requested[index], stack, identity, callback.redirect_uri)

        # 1-2. No token: 401, discovery, the client's client_id, the human signs in and allows.
        async with mcp_session(stack, oauth, exchanges) as session:
            first = exchanges.seen[0]
            assert (first.rpc, first.url, first.status) == ("initialize", stack.mcp_url, 401)
            assert first.field("resource_metadata") == stack.metadata_url
            assert first.field("scope") == READ and first.field("error") is None
            got = [(s.method, s.url, s.status) for s in exchanges.seen]
            assert ("GET", stack.metadata_url, 200) in got and ("GET", stack.as_metadata_url, 200) in got
            dcr = identity.learn(stack, callback.redirect_uri, py_registrations(exchanges, stack))
            if dcr is not None:
                # It registers after the discovery, with the scope it is about to ask for, then sends the human.
                assert set(dcr.sent["scope"].split()) == {READ, OFFLINE}
                assert dcr.sent["token_endpoint_auth_method"] == "none"
                assert dcr.sent["grant_types"] == ["authorization_code", "refresh_token"]
                assert dcr.sent["application_type"] == "native"  # OAuthClientMetadata's default
                assert got.index(("POST", stack.registration_endpoint, 201)) > got.index(
                    ("GET", stack.as_metadata_url, 200)
                )
            # The SDK asks for the 401's scope, not the configured one, with offline_access added because the
            # metadata lists it and the client declares the refresh grant.
            assert len(requested) == 1 and asked(0) == {READ, OFFLINE}
            check_consent(human.consents[0], identity, callback.redirect_uri, {READ, OFFLINE})
            identity.check_known(stack)
            assert exchanges.grants(0) == [("authorization_code", 200)]
            assert storage.tokens is not None and storage.tokens.refresh_token
            assert claims(storage.access_token)["scope"] == READ
            assert claims(storage.access_token)["client_id"] == identity.client_id

            # 3. A tool the token's scope covers.
            listed = await session.call_tool("list_notes", {})
            assert listed.structured_content is not None and listed.structured_content["count"] == 0, listed

            if every_step:
                # add_note needs notes:write: 403 insufficient_scope; the SDK steps up by itself (the human
                # consents to what it had plus notes:write: the page lists notes:write as new) and calls again.
                mark = exchanges.mark()
                added = await session.call_tool("add_note", {"text": "from the Python MCP SDK"})
                assert not added.is_error, added
                note = added.structured_content
                assert note is not None and note["text"] == "from the Python MCP SDK"
                calls = exchanges.calls(mark, "tools/call:add_note")
                assert [s.status for s in calls] == [403, 200]
                assert calls[0].field("error") == "insufficient_scope" and calls[0].field("scope") == WRITE
                assert len(requested) == 2 and asked(1) == {READ, WRITE, OFFLINE}
                check_consent(human.consents[1], identity, callback.redirect_uri, {WRITE}, frozenset({READ, OFFLINE}))
                assert exchanges.grants(mark) == [("authorization_code", 200)]

                listed = await session.call_tool("list_notes", {})
                assert listed.structured_content is not None
                assert [n["id"] for n in listed.structured_content["notes"]] == [note["id"]]

                # A refresh: past the access token's expiry the SDK refreshes before it sends the call.
                before = storage.access_token
                await until(storage.expired, ACCESS_TOKEN_TTL + 5, "the access token to expire")
                mark = exchanges.mark()
                listed = await session.call_tool("list_notes", {})
                assert listed.structured_content is not None and listed.structured_content["count"] == 1
                assert exchanges.grants(mark) == [("refresh_token", 200)]
                assert [s.status for s in exchanges.calls(mark, "tools/call:list_notes")] == [200]
                assert storage.access_token != before and len(requested) == 2  # no human needed
                assert claims(storage.access_token)["scope"] == f"{READ} {WRITE}"

                # delete_note needs notes:delete: the same step-up, then the delete works.
                mark = exchanges.mark()
                deleted = await session.call_tool("delete_note", {"note_id": note["id"]})
                assert not deleted.is_error, deleted
                assert deleted.structured_content == {"deleted": note["id"]}
                calls = exchanges.calls(mark, "tools/call:delete_note")
                assert [s.status for s in calls] == [403, 200] and calls[0].field("scope") == DELETE
                assert len(requested) == 3 and asked(2) == {READ, WRITE, DELETE, OFFLINE}
                kept = frozenset({READ, WRITE, OFFLINE})
                check_consent(human.consents[2], identity, callback.redirect_uri, {DELETE}, kept)
                assert set(claims(storage.access_token)["scope"].split()) == {READ, WRITE, DELETE}

        # 4. The human revokes the client on the account page.
        await human.revoke(identity.client_name)
        consenting = False
        assert not storage.expired()

        # The next call is refused: 401 invalid_token. The SDK answers a 401 with a new authorization, not
        # with a refresh; the human does not give it.
        mark = exchanges.mark()
        await refused_session(stack, oauth, exchanges)
        refused = exchanges.calls(mark, "initialize")
        assert [s.status for s in refused] == [401] and refused[0].field("error") == "invalid_token"
        assert refused[0].body is not None and "revoked" in refused[0].body["error_description"]
        assert len(requested) == len(human.consents) + 1 and exchanges.grants(mark) == []
        assert requested[-1].startswith(f"{stack.server.issuer}/oauth2/authorize?")

        if every_step:
            # The refresh fails too: past the access token's expiry the SDK refreshes first, and gets
            # invalid_grant; it drops its tokens, gets 401 without them and asks for the human again.
            await until(storage.expired, ACCESS_TOKEN_TTL + 5, "the access token to expire")
            mark = exchanges.mark()
            await refused_session(stack, oauth, exchanges)
            assert exchanges.grants(mark) == [("refresh_token", 400)]
            assert [s.body["error"] for s in exchanges.seen[mark:] if s.grant_type and s.body] == ["invalid_grant"]
            refused = exchanges.calls(mark, "initialize")
            assert [s.status for s in refused] == [401] and refused[0].field("error") is None
            assert len(requested) == 5
    assert len(py_registrations(exchanges, stack)) == (0 if identity.client_metadata_url else 1)
    assert all(s.url.startswith(stack.server.origin + "/") for s in exchanges.seen)


# --- the TypeScript SDK's side ------------------------------------------------------------------------


def ts_client(stack: Deployment, identity: ClientIdentity, tmp_path: Path) -> NodeMcpClient:
    config = {
        "server_url": stack.mcp_url,
        "client_metadata_url": identity.client_metadata_url,
        "client_name": identity.client_name,
        "scope": CONFIGURED_SCOPE,
    }
    return NodeMcpClient(config, tmp_path / "node-client.log")


def posts(node: NodeMcpClient, mark: int, rpc: str) -> list[dict[str, Any]]:
    """The MCP requests of one JSON-RPC method since ``mark`` (not the transport's own GET for an event
    stream, which the server answers 405 whenever it comes)."""
    return [e for e in node.since(mark, "http") if e.get("rpc") == rpc]


def ts_grants(node: NodeMcpClient, mark: int) -> list[tuple[str, int]]:
    """The token requests since ``mark``: (grant_type, status)."""
    return [(e["grant_type"], e["status"]) for e in node.since(mark, "http") if e.get("grant_type")]


def ts_registrations(node: NodeMcpClient, stack: Deployment) -> list[Registration]:
    """Every registration request the TypeScript client made (any JSON request that is not JSON-RPC)."""
    return [
        Registration(e["url"], e["status"], e.get("sent") or {}, e.get("answer"))
        for e in node.since(0, "http")
        if e.get("sent") is not None or e["url"] == stack.registration_endpoint
    ]


def latest_tokens(node: NodeMcpClient) -> dict[str, Any]:
    tokens: dict[str, Any] = node.since(0, "tokens")[-1]["tokens"]
    return tokens


def latest_scopes(node: NodeMcpClient) -> set[str]:
    return set(claims(latest_tokens(node)["access_token"])["scope"].split())


async def ts_connect(node: NodeMcpClient, stack: Deployment, identity: ClientIdentity, human: Human) -> Consent:
    """Connect with no token: 401, discovery, the client's client_id; the SDK hands the app the URL for the
    human (redirectToAuthorization) and throws UnauthorizedError; the app waits for the redirect, calls
    transport.finishAuth(code) and connects again."""
    await node.send({"cmd": "connect"})
    authorize = await node.wait_for("authorize")
    dcr = identity.learn(stack, node.redirect_uri, ts_registrations(node, stack))
    information = node.since(0, "client_information")
    assert [i["information"]["client_id"] for i in information] == [identity.client_id]
    if dcr is not None:
        # It registers with the scope it is about to ask for (the 401's), over its configured clientMetadata.
        assert dcr.sent["scope"] == READ and dcr.sent["token_endpoint_auth_method"] == "none"
        assert dcr.sent["grant_types"] == ["authorization_code", "refresh_token"]
        assert "application_type" not in dcr.sent  # authmd makes it native: its redirect URI is loopback
    assert authorization_request(authorize["url"], stack, identity, node.redirect_uri) == {READ}
    consent = await human.approve(authorize["url"])
    done = await node.wait_for("done")
    assert done["ok"], done
    identity.check_known(stack)
    first = node.since(0, "http")[0]
    assert (first["rpc"], first["url"], first["status"]) == ("initialize", stack.mcp_url, 401)
    assert www_field(first["www_authenticate"], "resource_metadata") == stack.metadata_url
    assert www_field(first["www_authenticate"], "scope") == READ
    got = [(e["method"], e["url"], e["status"]) for e in node.since(0, "http")]
    assert ("GET", stack.metadata_url, 200) in got and ("GET", stack.as_metadata_url, 200) in got
    if dcr is not None:
        assert got.index(("POST", stack.registration_endpoint, 201)) > got.index(("GET", stack.as_metadata_url, 200))
    assert ts_grants(node, 0) == [("authorization_code", 200)]
    # RFC 9207: the redirect carries authmd's issuer (the SDK 1.32.2 does not read it; the test does).
    assert node.since(0, "callback")[0]["params"]["iss"] == stack.server.issuer
    assert claims(latest_tokens(node)["access_token"])["client_id"] == identity.client_id
    return consent


async def revoke_access_token(stack: Deployment, token: str, client_id: str) -> None:
    """RFC 7009 revocation of one access token, as its public client would ask for it: authmd kills that
    token only (spec/protocol.md § Revocation), its grant and refresh token live on."""
    form = {"token": token, "token_type_hint": "access_token", "client_id": client_id}
    async with httpx2.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{stack.server.issuer}/oauth2/revoke", data=form)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("registration", REGISTRATIONS)
async def test_the_typescript_sdk_client(
    stack: Deployment, new_context: NewContext, registration: str, tmp_path: Path
) -> None:
    assert pinned_sdk_version() == TS_SDK_VERSION
    page = await (await new_context()).new_page()
    human = Human(page, stack, f"ts-{registration}@example.com", f"typescript-{registration}")
    identity = ClientIdentity.new(stack, registration, "TypeScript")
    async with ts_client(stack, identity, tmp_path) as node:
        identity.publish(stack, node.redirect_uri)

        # 1-2. The SDK asks for the 401's scope alone (no offline_access); the metadata document (or the
        # registration) declares the refresh grant, so a refresh token comes anyway.
        consent = await ts_connect(node, stack, identity, human)
        check_consent(consent, identity, node.redirect_uri, {READ})
        assert latest_tokens(node)["refresh_token"] and latest_scopes(node) == {READ}

        # 3. A tool the token's scope covers.
        listed = await node.command({"cmd": "call", "name": "list_notes", "arguments": {}})
        assert listed["ok"] and listed["result"]["structuredContent"]["count"] == 0, listed

        if registration == "cimd":  # the dcr run: registration, consent, one tool call, revocation
            # No step-up. On 403 insufficient_scope the SDK runs its auth() with the challenged scope, which,
            # holding a refresh token, refreshes instead of asking the human; the refreshed token has the
            # same scopes, the call gets the same 403, and the transport throws.
            for tool, arguments, scope in (
                ("add_note", {"text": "from the TypeScript MCP SDK"}, WRITE),
                ("delete_note", {"note_id": "note_none"}, DELETE),
            ):
                mark = node.mark()
                result = await node.command({"cmd": "call", "name": tool, "arguments": arguments})
                assert not result["ok"] and result["error"]["code"] == 403, result
                message = "Streamable HTTP error: Server returned 403 after trying upscoping"
                assert result["error"]["message"] == message
                calls = posts(node, mark, f"tools/call:{tool}")
                assert [e["status"] for e in calls] == [403, 403]
                assert www_field(calls[0]["www_authenticate"], "error") == "insufficient_scope"
                assert www_field(calls[0]["www_authenticate"], "scope") == scope
                assert ts_grants(node, mark) == [("refresh_token", 200)]
                assert not node.since(mark, "authorize"), "the SDK asked the human after all"
                assert latest_scopes(node) == {READ}

            # A refresh: an access token the server no longer takes gets 401 invalid_token, and the SDK
            # refreshes and sends again. (The test revokes the access token alone, RFC 7009, rather than
            # wait for it to expire: the SDK does not track expiry, and both get the same 401.)
            before = latest_tokens(node)["access_token"]
            await revoke_access_token(stack, before, identity.client_id)
            mark = node.mark()
            listed = await node.command({"cmd": "call", "name": "list_notes", "arguments": {}})
            assert listed["ok"], listed
            calls = posts(node, mark, "tools/call:list_notes")
            assert [e["status"] for e in calls] == [401, 200]
            assert www_field(calls[0]["www_authenticate"], "error") == "invalid_token"
            assert ts_grants(node, mark) == [("refresh_token", 200)]
            assert latest_tokens(node)["access_token"] != before and not node.since(mark, "authorize")
            assert latest_scopes(node) == {READ}

        # 4. The human revokes the client: the next call gets 401 invalid_token; the SDK's refresh fails
        # (invalid_grant), it drops its tokens and asks for a new authorization, which the human does not
        # give (the app reports the SDK's UnauthorizedError).
        await human.revoke(identity.client_name)
        mark = node.mark()
        result = await node.command({"cmd": "call", "name": "list_notes", "arguments": {}})
        assert not result["ok"] and result["error"]["type"] == "UnauthorizedError", result
        calls = posts(node, mark, "tools/call:list_notes")
        assert [e["status"] for e in calls] == [401]
        assert www_field(calls[0]["www_authenticate"], "error") == "invalid_token"
        assert ts_grants(node, mark) == [("refresh_token", 400)]
        assert [e["scope"] for e in node.since(mark, "invalidate")] == ["tokens"]
        again = node.since(mark, "authorize")
        assert len(again) == 1 and authorization_request(again[0]["url"], stack, identity, node.redirect_uri)
    assert len(ts_registrations(node, stack)) == (0 if identity.client_metadata_url else 1)
    assert all(e["url"].startswith(stack.server.origin + "/") for e in node.since(0, "http"))


async def test_the_typescript_sdk_client_without_a_refresh_token_steps_up_to_the_challenged_scope_and_keeps_the_others(
    stack: Deployment, new_context: NewContext, tmp_path: Path
) -> None:
    """Without a refresh token the SDK 1.32.2 does answer 403 insufficient_scope with a new authorization,
    but for the challenged scope alone (no union with what it holds). authmd's incremental authorization
    keeps what the human allowed this client before: the consent page lists notes:write as new, with
    notes:read as kept, and the client ends up able to read and write without asking the human again."""
    page = await (await new_context()).new_page()
    human = Human(page, stack, "ts-plain@example.com", "typescript-plain-cimd")
    identity = ClientIdentity.new(stack, "cimd", "TypeScript")
    async with ts_client(stack, identity, tmp_path) as node:
        identity.publish(stack, node.redirect_uri, refresh=False)
        consent = await ts_connect(node, stack, identity, human)
        check_consent(consent, identity, node.redirect_uri, {READ})
        assert "Its access lasts until its token expires." in consent.text
        assert "refresh_token" not in latest_tokens(node)

        # add_note needs notes:write: 403; the SDK asks the human for notes:write alone. The app's part: on
        # UnauthorizedError wait for the redirect, finishAuth, call again.
        mark = node.mark()
        await node.send(
            {"cmd": "call", "name": "add_note", "arguments": {"text": "asked for notes:write"}, "authorize": "wait"}
        )
        authorize = await node.wait_for("authorize")
        assert authorization_request(authorize["url"], stack, identity, node.redirect_uri) == {WRITE}
        consent = await human.approve(authorize["url"])
        check_consent(consent, identity, node.redirect_uri, {WRITE}, frozenset({READ}))
        assert "Its access lasts until its token expires." in consent.text
        done = await node.wait_for("done")
        assert done["ok"] and not done["result"].get("isError"), done
        calls = posts(node, mark, "tools/call:add_note")
        assert [e["status"] for e in calls] == [403, 200]
        assert www_field(calls[0]["www_authenticate"], "scope") == WRITE
        assert ts_grants(node, mark) == [("authorization_code", 200)]
        assert latest_scopes(node) == {READ, WRITE} and "refresh_token" not in latest_tokens(node)

        # notes:read was kept: list_notes works on that token, with no 403 and no human.
        mark = node.mark()
        listed = await node.command({"cmd": "call", "name": "list_notes", "arguments": {}})
        assert listed["ok"] and not listed["result"].get("isError"), listed
        assert [n["text"] for n in listed["result"]["structuredContent"]["notes"]] == ["asked for notes:write"]
        assert [e["status"] for e in posts(node, mark, "tools/call:list_notes")] == [200]
        assert ts_grants(node, mark) == [] and not node.since(mark, "authorize")
        assert len(human.consents) == 2
