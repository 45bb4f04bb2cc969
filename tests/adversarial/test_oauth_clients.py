"""Attacks on the MCP clients' path (issue 17), against a real server process with two workers, on
SQLite and on Redis: a code redeemed by many at once, a registration flood, redirect URIs that try to
leave the registered ones, a PKCE downgrade, a cross-site consent post, a code injected across
clients, mix-up (``iss``), metadata documents at private addresses or naming another client_id. The
single-request checks behind them are in tests/flows/test_authorize.py and
tests/flows/test_dynamic_clients.py."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import ServerProcess, StartServer
from tests.flows.test_authorize import REDIRECT, Browser, Page, approved, authorize_url, pkce

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PARALLEL = 40


class _Harness:
    """What tests/flows/test_authorize.py's helpers read of a harness, over a real server."""

    def __init__(self, client: httpx.AsyncClient, server: ServerProcess) -> None:
        self.client = client
        self.settings = type("S", (), {"issuer": server.issuer})()


def _server(start_server: StartServer, tmp_path: Path, store_env: dict[str, str], **extra: str) -> ServerProcess:
    config = tmp_path / "clients.toml"
    config.write_text(
        f'[[clients]]\nclient_id = "desk-app"\nclient_name = "Desk App"\nredirect_uris = ["{REDIRECT}"]\n'
    )
    env = {
        "AUTHMD_POW_MODE": "off",
        "AUTHMD_ACCESS_LOG": "false",
        "AUTHMD_WORKERS": "2",
        "AUTHMD_CONFIG": str(config),
        **store_env,
        **extra,
    }
    return start_server(env)


def _client(server: ServerProcess) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    return httpx.AsyncClient(base_url=server.origin, timeout=30.0, limits=limits)


async def test_a_code_redeemed_by_many_at_once_is_good_once_and_the_race_revokes_it(
    start_server: StartServer, tmp_path: Path, store_env: dict[str, str]
) -> None:
    server = _server(start_server, tmp_path, store_env)
    async with _client(server) as client:
        h: Any = _Harness(client, server)
        verifier, challenge = pkce()
        browser = Browser(client, server.issuer)
        got = await approved(h, browser, authorize_url(h, code_challenge=challenge))
        form = {
            "grant_type": "authorization_code",
            "code": got["code"],
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
            "client_id": "desk-app",
        }
        answers = await asyncio.gather(*(client.post("/oauth2/token", data=form) for _ in range(PARALLEL)))
        outcomes = Counter((r.status_code, r.json().get("error", "")) for r in answers)
        # At most one redemption wins the code; whether it still gets its tokens depends on whether a
        # loser's revocation lands before the winner reads the grant: both are RFC 6749 §4.1.2.
        assert set(outcomes) <= {(200, ""), (400, "invalid_grant")}, outcomes
        assert outcomes[(200, "")] <= 1 and outcomes[(400, "invalid_grant")] >= PARALLEL - 1, outcomes
        # The code was used more than once, so the grant and whatever it issued are revoked.
        for won in (r for r in answers if r.status_code == 200):
            r = await client.get("/api/notes", headers={"Authorization": f"Bearer {won.json()['access_token']}"})
            assert r.status_code == 401
        account = await browser.go(f"{server.issuer}/account")
        assert isinstance(account, Page) and "Desk App" in account.text
        assert '<span class="tag">revoked</span>' in account.text
        again = await client.post("/oauth2/token", data=form)
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


async def test_a_registration_flood_gets_exactly_the_allowance_across_workers(
    start_server: StartServer, tmp_path: Path, store_env: dict[str, str]
) -> None:
    server = _server(start_server, tmp_path, store_env, AUTHMD_DCR_ENABLED="true", AUTHMD_DCR_LIMIT_PER_SOURCE="5")
    body = {"client_name": "Flood", "redirect_uris": [REDIRECT]}
    async with _client(server) as client:
        answers = await asyncio.gather(*(client.post("/oauth2/register", json=body) for _ in range(PARALLEL)))
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 5, 429: PARALLEL - 5}, statuses
    assert len({r.json()["client_id"] for r in answers if r.status_code == 201}) == 5


REDIRECT_TRICKS = [
    "https://attacker.example/callback",
    "http://127.0.0.1:5173/callback/",
    "http://127.0.0.1:5173/callback?next=https://attacker.example",
    "http://127.0.0.1:5173/Callback",
    "http://127.0.0.1:5173@attacker.example/callback",
    "http://attacker.example#@127.0.0.1:5173/callback",
    "http://127.0.0.1:5173\\@attacker.example/callback",
    "http://127.0.0.1:5173/callback/../../evil",
    "http://127.0.0.1.attacker.example:5173/callback",
    "http://localhost:5173/callback",
    "HTTP://127.0.0.1:5173/callback",
    "http://127.0.0.1:5173/%63allback",
    "//attacker.example/callback",
    "javascript:alert(1)//http://127.0.0.1:5173/callback",
    "http://127.0.0.1:5173/callback\r\nLocation: https://attacker.example",
]


async def test_no_redirect_uri_but_the_registered_one_is_ever_redirected_to(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = _server(start_server, tmp_path, {})
    async with _client(server) as client:
        h: Any = _Harness(client, server)
        for trick in REDIRECT_TRICKS:
            r = await client.get(authorize_url(h, code_challenge=pkce()[1], redirect_uri=trick))
            assert r.status_code in (400, 401), (trick, r.status_code)
            assert "location" not in r.headers, trick
        # A downgrade to plain PKCE or none goes back to the real client only, never anywhere else.
        for params in ({"code_challenge_method": "plain"}, {"code_challenge": ""}):
            r = await client.get(authorize_url(h, **{"code_challenge": pkce()[1], **params}))
            assert r.status_code == 303
            sent = parse_qs(urlsplit(r.headers["location"]).query)
            assert r.headers["location"].startswith(REDIRECT + "?") and sent["error"] == ["invalid_request"]
            assert sent["iss"] == [server.issuer] and "code" not in sent


async def test_a_cross_site_consent_post_approves_nothing(start_server: StartServer, tmp_path: Path) -> None:
    """The attacker's page posts the consent form with the victim's cookies but without the CSRF token
    (it cannot read it); SameSite=Lax would already keep the cookie off a cross-site POST."""
    server = _server(start_server, tmp_path, {})
    async with _client(server) as client:
        h: Any = _Harness(client, server)
        browser = Browser(client, server.issuer)
        page = await browser.go(authorize_url(h, code_challenge=pkce()[1]))
        assert isinstance(page, Page)
        signed = await browser.submit("/login/dev", {**page.form("/login/dev"), "email": "ada@example.com"})
        assert isinstance(signed, Page) and signed.title.startswith("Connect ")
        fields = signed.form("/oauth2/consent")
        forged = await browser.submit(
            "/oauth2/consent", {"request": fields["request"], "decision": "approve"}, until="http://nowhere"
        )
        assert isinstance(forged, Page) and forged.status == 400
        # The session cookie itself stays off cross-site posts and out of scripts' reach.
        fresh = await client.get(authorize_url(h, code_challenge=pkce()[1]))
        set_cookie = fresh.headers["set-cookie"].lower()
        assert "samesite=lax" in set_cookie and "httponly" in set_cookie


async def test_code_injection_and_mix_up(start_server: StartServer, tmp_path: Path) -> None:
    """A code stolen from one client's redirect and presented by another (even with the right verifier)
    is refused; every answer to the client names this issuer (RFC 9207), success and error alike, so a
    client that talks to two servers can tell whose answer it holds."""
    config = tmp_path / "two.toml"
    other = "http://127.0.0.1:6000/cb"
    config.write_text(
        f'[[clients]]\nclient_id = "desk-app"\nclient_name = "Desk App"\nredirect_uris = ["{REDIRECT}"]\n'
        f'[[clients]]\nclient_id = "evil-app"\nclient_name = "Evil App"\nredirect_uris = ["{other}"]\n'
    )
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_CONFIG": str(config)})
    async with _client(server) as client:
        h: Any = _Harness(client, server)
        verifier, challenge = pkce()
        got = await approved(h, Browser(client, server.issuer), authorize_url(h, code_challenge=challenge))
        assert got["iss"] == server.issuer
        stolen = {"grant_type": "authorization_code", "code": got["code"], "code_verifier": verifier}
        for as_evil in (
            {"client_id": "evil-app", "redirect_uri": other},
            {"client_id": "evil-app", "redirect_uri": REDIRECT},
        ):
            r = await client.post("/oauth2/token", data={**stolen, **as_evil})
            assert (r.status_code, r.json()["error"]) == (400, "invalid_grant"), r.text
        ok = await client.post("/oauth2/token", data={**stolen, "client_id": "desk-app", "redirect_uri": REDIRECT})
        assert ok.status_code == 200  # the injection attempts did not burn the rightful client's code
        denied = await client.get(authorize_url(h, code_challenge=challenge, scope="nope"))
        assert parse_qs(urlsplit(denied.headers["location"]).query)["iss"] == [server.issuer]


async def test_metadata_documents_at_private_addresses_or_with_another_client_id(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A client_id URL that resolves to a private address is refused before any request is sent
    (unless the operator allows private targets); a document whose client_id is not its own URL is
    refused; neither is ever redirected to."""
    from tests.outbound.test_cimd import Host, running

    with running(Host()) as host:
        good, liar = host.url("/good.json"), host.url("/liar.json")
        host.serve({"client_id": good, "client_name": "Good", "redirect_uris": [REDIRECT]}, "/good.json")
        host.serve({"client_id": "https://trusted.example/c.json", "redirect_uris": [REDIRECT]}, "/liar.json")
        server = start_server({"AUTHMD_POW_MODE": "off"})
        async with _client(server) as client:
            h: Any = _Harness(client, server)
            r = await client.get(authorize_url(h, client_id=good, code_challenge=pkce()[1]))
            assert r.status_code == 401 and "location" not in r.headers
            assert host.hits == 0  # 127.0.0.1 is private: nothing was sent
        allowed = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_CIMD_ALLOW_PRIVATE": "true"})
        async with _client(allowed) as client:
            h = _Harness(client, allowed)
            r = await client.get(authorize_url(h, client_id=liar, code_challenge=pkce()[1]))
            assert r.status_code == 401 and "location" not in r.headers
            assert "client_id" in r.text
            r = await client.get(authorize_url(h, client_id=good, code_challenge=pkce()[1]))
            assert r.status_code == 303 and "/oauth2/consent" in r.headers["location"]
