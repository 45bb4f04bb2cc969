"""The human claim against real parts: the authmd server process, a real OpenID Connect provider
(node oidc-provider, tests/oidc) and — for the journey — a real headless Chromium.

The provider runs in its default, conformant claim placement (the email claims from UserInfo, not in the
ID token: OIDC Core §5.4); the sign-in journeys run in the other placement too (claims in the ID token).

HTTP-level failure paths drive the provider's login form with plain requests; the journeys click
through the real pages and save screenshots of each page state to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.browser import launch_browser, require_browser, screenshot
from tests.e2e.conftest import ServerProcess, StartServer
from tests.helpers import Agent, Page
from tests.oidc_server import OidcProvider, alogin_via_http
from tests.tls import TlsFiles

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def start_with_oidc(
    start_server: StartServer, provider: OidcProvider, extra: dict[str, str] | None = None, **kwargs: Any
) -> ServerProcess:
    client_id, secret = f"authmd-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    env = {
        "AUTHMD_POW_MODE": "off",
        "AUTHMD_OIDC_ISSUER": provider.issuer,
        "AUTHMD_OIDC_CLIENT_ID": client_id,
        "AUTHMD_OIDC_CLIENT_SECRET": secret,
        "AUTHMD_OIDC_NAME": "Test IdP",
        **(extra or {}),
    }
    server = start_server(env, **kwargs)
    provider.register_client([f"{server.origin}/oidc/callback"], client_id=client_id, client_secret=secret)
    return server


async def sign_in_http(client: httpx.AsyncClient, server: ServerProcess, login: str, return_to: str) -> str:
    """GET /login at authmd, sign in at the provider's form: the callback URL the provider sent back."""
    params = {"return_to": return_to, "prompt": "login"}
    r = await client.get(f"{server.issuer}/login", params=params, follow_redirects=False)
    assert r.status_code == 303, r.text
    return await alogin_via_http(client, r.headers["location"], login)


async def test_sign_in_failure_paths_at_the_callback(start_server: StartServer, oidc_provider: OidcProvider) -> None:
    server = start_with_oidc(start_server, oidc_provider, {"AUTHMD_ACCESS_LOG": "true"})
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        reg = await agent.register()
        uri = (await agent.start_claim(reg["claim"]["token"], "ada@example.com"))["attempt"]["verification_uri"]
        # The link goes to /login, which holds the attempt and sends the browser to a URL without it, and
        # from there to the provider.
        first = await client.get(uri, follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/login?return_to=%2Fclaim"
        second = await client.get(server.origin + first.headers["location"], follow_redirects=False)
        assert second.status_code == 303 and second.headers["location"].startswith(oidc_provider.issuer)
        auth = parse_qs(urlsplit(second.headers["location"]).query)
        assert auth["code_challenge_method"] == ["S256"] and auth["redirect_uri"] == [f"{server.origin}/oidc/callback"]
        assert "claim_attempt_token" not in second.headers["location"] and auth["nonce"] and auth["state"]
        callback = await alogin_via_http(client, second.headers["location"], "ada@example.com")
        params = parse_qs(urlsplit(callback).query)
        assert params["iss"] == [oidc_provider.issuer]  # RFC 9207

        # A wrong `iss` is refused and signs nobody in.
        forged = _with(callback, iss="http://127.0.0.1:1/evil")
        r = await client.get(forged, follow_redirects=False)
        assert r.status_code == 400 and "another issuer" in r.text
        # The state was spent by that attempt: the genuine response no longer works either (replay).
        r = await client.get(callback, follow_redirects=False)
        assert r.status_code == 400 and "Sign-in expired" in r.text
        assert (
            (await client.get(f"{server.issuer}/claim", follow_redirects=False))
            .headers["location"]
            .startswith("/login")
        )

        # A fresh sign-in, then the same response replayed: refused.
        callback = await sign_in_http(client, server, "ada@example.com", "/claim")
        ok = await client.get(callback, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/claim"
        replay = await client.get(callback, follow_redirects=False)
        assert replay.status_code == 400
        page = await client.get(f"{server.issuer}/claim")
        assert page.status_code == 200 and "Authorize this agent?" in page.text and "ada@example.com" in page.text

        # A state from another browser is refused.
        callback = await sign_in_http(client, server, "ada@example.com", "/account")
        r = await client.get(_with(callback, state="not-this-browser"), follow_redirects=False)
        assert r.status_code == 400 and "state" in r.text

    # Neither the authorization code nor the client secret reaches the server's log.
    log = server.read_log()
    assert params["code"][0] not in log and server.overrides["AUTHMD_OIDC_CLIENT_SECRET"] not in log
    assert "GET /oidc/callback" in log  # the access log is on and drops the query string

    # An unverified email never signs in.
    async with httpx.AsyncClient(timeout=10.0) as client:
        callback = await sign_in_http(client, server, "unverified+bob@example.com", "/account")
        r = await client.get(callback, follow_redirects=False)
        assert r.status_code == 400 and "not verified" in r.text
        assert (await client.get(f"{server.issuer}/account", follow_redirects=False)).status_code == 303


async def test_a_verified_email_becomes_the_existing_user(
    start_server: StartServer, oidc_provider_each_placement: OidcProvider
) -> None:
    """The provider is authoritative for humans: a first sign-in with a known email is that user."""
    server = start_with_oidc(start_server, oidc_provider_each_placement)
    async with httpx.AsyncClient(timeout=10.0) as client:
        callback = await sign_in_http(client, server, "Gus@Example.com", "/account")
        assert (await client.get(callback, follow_redirects=False)).status_code == 303
        page = await client.get(f"{server.issuer}/account")
        assert "gus@example.com" in page.text


def _with(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---- the journey in a real browser ---------------------------------------------------------------


async def _sign_in_at_provider(page: Any, login: str) -> None:
    await page.locator('input[name="login"]').fill(login)
    await page.locator('input[name="password"]').fill("any-password")
    await page.get_by_role("button", name="Sign-in").click()


async def navigation_history(page: Any) -> list[str]:
    """Every URL in the tab's session history (what Back and the history list would show), from Chromium
    itself over the DevTools protocol."""
    cdp = await page.context.new_cdp_session(page)
    try:
        entries = (await cdp.send("Page.getNavigationHistory"))["entries"]
    finally:
        await cdp.detach()
    return [entry["url"] for entry in entries]


async def _back_at(page: Any, server: ServerProcess, title: str) -> None:
    """Wait until the browser is back at authmd from the provider, and is shown ``title`` (else fail with
    what it is shown instead, e.g. why the sign-in was refused)."""
    await page.wait_for_url(lambda url: url.startswith(server.origin + "/"))
    heading = await page.locator("main h1").first.inner_text()
    assert heading == title, await page.inner_text("main")


async def test_the_human_claims_in_a_real_browser(
    start_server: StartServer, oidc_provider_each_placement: OidcProvider, new_context: Any
) -> None:
    server = start_with_oidc(start_server, oidc_provider_each_placement)
    guarded = await new_context()
    page = await guarded.new_page()
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        reg = await agent.register({"type": "anonymous", "agent": {"name": "Docs bot", "platform": "pytest"}})
        before = (await agent.token(reg["identity"]["assertion"]))["access_token"]
        assert (await agent.api("POST", "/notes", before, json={"text": "draft"})).status_code == 201
        token = reg["claim"]["token"]
        uri = (await agent.start_claim(token, "ada@example.com"))["attempt"]["verification_uri"]

        secret = parse_qs(urlsplit(parse_qs(urlsplit(uri).query)["return_to"][0]).query)["claim_attempt_token"][0]
        await page.goto(uri)
        await page.wait_for_selector('input[name="login"]')
        assert not [u for u in await navigation_history(page) if secret in u]  # not even at the provider's
        await screenshot(page, "claim-1-signed-out-provider-login")
        await _sign_in_at_provider(page, "ada@example.com")
        await _back_at(page, server, "Authorize this agent?")
        assert page.url == f"{server.origin}/claim"  # the attempt token left the URL
        assert not [u for u in await navigation_history(page) if secret in u]
        body = await page.inner_text("main")
        assert "Signed in as ada@example.com" in body and "Docs bot" in body and "unverified" in body
        assert "notes:delete" in body and "Only authorize an agent you started yourself" in body
        await screenshot(page, "claim-2-ready")

        assert (await agent.complete_claim(token, "000000", expect=409))["error"] == "claim_not_confirmed"
        await page.get_by_role("button", name="Authorize").click()
        await page.wait_for_selector(".code")
        code = re.sub(r"\D", "", await page.inner_text(".code"))
        assert len(code) == 6
        await screenshot(page, "claim-3-code-shown")

        assert await agent.claim_status(token) == "confirmed"
        done = await agent.complete_claim(token, code)
        assert done["status"] == "claimed"
        after = await agent.token(done["identity"]["assertion"])
        assert set(after["scope"].split()) == {"notes:read", "notes:write", "notes:delete"}
        notes = (await agent.api("GET", "/notes", after["access_token"])).json()
        assert notes["count"] == 1 and notes["limit"] == 10_000  # the quota lifted, the note kept
        note_id = notes["notes"][0]["id"]
        assert (await agent.api("DELETE", f"/notes/{note_id}", after["access_token"])).status_code == 204
        assert (await agent.api("GET", "/notes", before)).status_code == 401  # the pre-claim token died
        rotated = await agent.refresh(done["identity"]["refresh_token"]["value"])
        assert rotated["identity"]["refresh_token"]["value"] != done["identity"]["refresh_token"]["value"]

        await page.goto(f"{server.origin}/account")
        await page.wait_for_selector(f"text={reg['id']}")
        await screenshot(page, "claim-4-success-account")
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_selector("text=You are signed out")
        await screenshot(page, "claim-5-signed-out")
    assert guarded.blocked == [] or all("127.0.0.1" not in u for u in guarded.blocked)


async def test_wrong_account_then_switch_then_this_wasnt_me(
    start_server: StartServer, oidc_provider: OidcProvider, new_context: Any
) -> None:
    server = start_with_oidc(start_server, oidc_provider)
    page = await (await new_context()).new_page()
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        reg, access = await agent.start()
        uri = (await agent.start_claim(reg["claim"]["token"], "bob@example.com"))["attempt"]["verification_uri"]
        await page.goto(uri)
        await page.wait_for_selector('input[name="login"]')
        await _sign_in_at_provider(page, "eve@example.com")
        await _back_at(page, server, "Wrong account")
        await screenshot(page, "claim-6-wrong-account")
        await page.get_by_role("button", name="Switch account").last.click()
        await page.wait_for_selector('input[name="login"]')  # prompt=login: the provider asks again
        await _sign_in_at_provider(page, "bob@example.com")
        await _back_at(page, server, "Authorize this agent?")
        await page.get_by_role("button", name="This wasn't me").click()
        await page.wait_for_selector("text=Access revoked")
        await screenshot(page, "claim-7-revoked")
        assert (await agent.api("GET", "/notes", access)).status_code == 401
        assert await agent.claim_status(reg["claim"]["token"]) == "denied"


async def test_the_ceremony_over_https_with_secure_cookies(
    start_server: StartServer, oidc_provider: OidcProvider, tls_files: TlsFiles
) -> None:
    require_browser()
    tls = {"AUTHMD_TLS_CERT_FILE": str(tls_files.cert), "AUTHMD_TLS_KEY_FILE": str(tls_files.key)}
    env = {**tls, "AUTHMD_ISSUER": "https://127.0.0.1:{port}"}
    server = start_with_oidc(start_server, oidc_provider, env, verify=tls_files.client_context())
    assert server.origin.startswith("https://")
    async with (
        httpx.AsyncClient(timeout=10.0, verify=tls_files.client_context()) as client,
        launch_browser([tls_files.chromium_trust_arg()]) as chromium,
    ):
        meta = (await client.get(f"{server.issuer}/.well-known/oauth-authorization-server")).json()
        assert meta["agent_auth"]["claim"]["sign_in"] == "oidc"
        assert "service_auth" in meta["agent_auth"]["identity_types_supported"]
        agent = Agent(client, server.issuer)
        reg = await agent.register()
        uri = (await agent.start_claim(reg["claim"]["token"], "ada@example.com"))["attempt"]["verification_uri"]
        context = await chromium.new_context()
        page = await context.new_page()
        await page.goto(uri)
        await page.wait_for_selector('input[name="login"]')
        await _sign_in_at_provider(page, "ada@example.com")
        await _back_at(page, server, "Authorize this agent?")
        cookies = {c["name"]: c for c in await context.cookies(server.origin)}
        session = cookies["__Host-authmd_session"]
        assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/"
        await page.get_by_role("button", name="Authorize").click()
        await page.wait_for_selector(".code")
        code = re.sub(r"\D", "", await page.inner_text(".code"))
        await screenshot(page, "claim-8-https-code-shown")
        assert (await agent.complete_claim(reg["claim"]["token"], code))["status"] == "claimed"
        await context.close()


async def test_id_jag_step_up_on_redis_with_the_real_provider(
    start_server: StartServer, oidc_provider: OidcProvider, provider: Any, shared_redis: Any, tmp_path: Any
) -> None:
    """interaction_required → the human signs in at the OpenID provider and authorizes → completion →
    the next ID-JAG of that (iss, sub) is a clean match; state on Redis."""
    config = tmp_path / "authmd.toml"
    config.write_text(
        f'store_url = "{shared_redis.url}?prefix=stepup{secrets.token_hex(4)}:"\n'
        "[[providers]]\n"
        f'issuer = "{provider.issuer}"\n'
        'name = "Agent Platform"\n'
        'client_ids = ["agent-cli"]\n'
        'scopes = ["notes:read", "notes:write"]\n'
    )
    server = start_with_oidc(start_server, oidc_provider, {"AUTHMD_CONFIG": str(config)})
    async with httpx.AsyncClient(timeout=10.0) as client:
        # The person exists here already: they signed in once.
        callback = await sign_in_http(client, server, "cy@example.com", "/account")
        assert (await client.get(callback, follow_redirects=True)).status_code == 200
        body = {
            "type": "identity_assertion",
            "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
            "assertion": provider.mint_id_jag("u-b", aud=server.issuer, email="cy@example.com"),
        }
        r = await client.post(f"{server.issuer}/agent/identity", json=body)
        assert r.status_code == 401 and r.json()["error"] == "interaction_required"
        step_up = r.json()
        page = Page(await client.get(step_up["claim"]["attempt"]["verification_uri"], follow_redirects=True))
        assert page.title == "Link this agent to your account?" and "Agent Platform" in page.text
        code = Page(await client.post(f"{server.issuer}/claim/confirm", data=page.form("/claim/confirm"))).code
        agent = Agent(client, server.issuer)
        done = await agent.complete_claim(step_up["claim"]["token"], code)
        assert done["status"] == "claimed" and done["id"] == step_up["id"]
        body["assertion"] = provider.mint_id_jag("u-b", aud=server.issuer, email="cy@example.com")
        clean = await client.post(f"{server.issuer}/agent/identity", json=body)
        assert clean.status_code == 200 and clean.json()["id"] == step_up["id"], clean.text
        access = (await agent.token(clean.json()["identity"]["assertion"]))["access_token"]
        assert (await agent.api("GET", "/notes", access)).status_code == 200
    log = server.read_log()
    assert code not in re.findall(r"(?<![0-9])[0-9]{6}(?![0-9])", log)


async def test_the_agent_command_claims_with_a_human_in_a_real_browser(
    start_server: StartServer, oidc_provider: OidcProvider, new_context: Any, tmp_path: Any
) -> None:
    """`authmd agent register` then `authmd agent claim`: the command prints the link and waits; the
    human signs in at the OpenID provider in Chromium, authorizes and reads the code back into it."""
    import os
    import subprocess
    import sys
    import threading

    from tests.e2e.conftest import ROOT

    server = start_with_oidc(start_server, oidc_provider)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")} | {"AUTHMD_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "app", "agent"]
    api = f"{server.issuer}/api/notes"
    registered = subprocess.run(
        [*command, "register", api], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert registered.returncode == 0, registered.stderr
    proc = subprocess.Popen(
        [*command, "claim", "--email", "ada@example.com", "--wait", "120"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(240, proc.kill)  # a stuck command cannot hang the suite
    watchdog.start()
    try:
        assert proc.stdout is not None
        link = next((line.strip() for line in proc.stdout if "/login?return_to=" in line), "")
        assert link.startswith(server.issuer), link
        page = await (await new_context()).new_page()
        await page.goto(link)
        await page.wait_for_selector('input[name="login"]')
        await _sign_in_at_provider(page, "ada@example.com")
        await _back_at(page, server, "Authorize this agent?")
        await page.get_by_role("button", name="Authorize").click()
        await page.wait_for_selector(".code")
        code = re.sub(r"\D", "", await page.inner_text(".code"))
        out, err = proc.communicate(code + "\n", timeout=120)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Claimed" in out and "notes:delete" in out
    called = subprocess.run(
        [*command, "call", api, "-d", '{"text":"kept"}'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert called.returncode == 0 and '"kept"' in called.stdout
