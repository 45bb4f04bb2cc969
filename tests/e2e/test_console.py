"""The operator console (issue 15 item 3) against real parts: the `authmd serve` process, real Chromium at
desktop (1280 by 800) and phone (375 by 740) width with screenshots in test-artifacts/screenshots/console-*,
the development sign-in in dev mode and the real OpenID Connect provider (tests/oidc_server.py) over https
as a deployment runs it, agents registering through the real API, and the admin API for the audit trail.
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from app.tokens import admin_key_hash, new_admin_key
from tests.browser import launch_browser, require_browser, screenshot
from tests.e2e.conftest import ServerProcess, StartServer
from tests.e2e.test_human_claim import _back_at, _sign_in_at_provider, sign_in_http, start_with_oidc
from tests.e2e.test_pages_day_one import PHONE, assert_fits_a_phone
from tests.helpers import Agent, DevHuman, Page, claimed
from tests.oidc_server import OidcProvider
from tests.provider import TestProvider
from tests.tls import TlsFiles

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

DESKTOP = {"width": 1280, "height": 800}
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
ADMIN, OTHER = "Ops@Example.com", "ada@example.com"
ADMIN_KEY = new_admin_key()
COUNTS_DEADLINE = 30.0  # seconds: each instance adds its counts to the store every 5 s
CONSOLE_GETS = ("/console", "/console?window=day", "/console?window=week", "/console/search", "/console/providers")


def _admin_config(tmp_path: Path) -> Path:
    path = tmp_path / "console.toml"
    path.write_text(
        f'[[admin_keys]]\nname = "audit"\nkey_hash = "{admin_key_hash(ADMIN_KEY)}"\nscopes = ["admin:read"]\n'
    )
    return path


def dev_console(start_server: StartServer, tmp_path: Path) -> ServerProcess:
    return start_server(
        {"AUTHMD_POW_MODE": "off", "AUTHMD_CONSOLE_ADMINS": ADMIN, "AUTHMD_CONFIG": str(_admin_config(tmp_path))}
    )


async def _dev_sign_in(page: Any, server: ServerProcess, email: str, path: str = "/console") -> None:
    """Open a console URL signed out: the development sign-in, then back at the URL."""
    await page.goto(f"{server.origin}{path}")
    assert await page.locator("main h1").first.inner_text() == "Development sign-in"
    await page.get_by_label("Email").fill(email)
    await page.get_by_role("button", name="Continue").click()
    await page.wait_for_url(f"{server.origin}{path}")


async def _counted(human: DevHuman, server: ServerProcess, wanted: str) -> Page:
    """The overview once the registrations were counted (the server adds its counts to the store every few
    seconds): polled until the registrations chart's description says ``wanted``, or fail at the deadline."""
    deadline = time.monotonic() + COUNTS_DEADLINE
    while True:
        page = await human.follow(f"{server.issuer}/console")
        assert page.status == 200, page.text
        desc = re.search(r'<desc id="registrations-d">(.*?)</desc>', page.text)
        if desc and wanted in html.unescape(desc.group(1)):
            return page
        assert time.monotonic() < deadline, f"not counted within {COUNTS_DEADLINE:g} s: {desc}"
        await anyio.sleep(0.2)


async def _screens(page: Any, name: str, phone: bool = False) -> None:
    await screenshot(page, f"console-{name}{'-phone' if phone else ''}")
    if phone:
        await assert_fits_a_phone(page, [])


async def test_the_console_in_chromium_with_the_development_sign_in(
    start_server: StartServer, new_context: Any, tmp_path: Path
) -> None:
    server = dev_console(start_server, tmp_path)
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        docs = await agent.register({"type": "anonymous", "agent": {"name": "Docs bot", "platform": "pytest"}})
        docs_access = (await agent.token(docs["identity"]["assertion"]))["access_token"]
        await agent.register({"type": "anonymous", "agent": {"name": "Mail helper"}})
        owner = DevHuman(client, server.issuer)
        kept, _ = await claimed(agent, owner, OTHER)  # an account ada@example.com owns

        # A signed-in person who is not an operator gets the 403 page, on every console URL.
        for path in (*CONSOLE_GETS, f"/console/account?id={docs['account']['id']}"):
            refused = await owner.follow(f"{server.issuer}{path}")
            assert refused.status == 403 and refused.title == "Not an operator", path
        admin = DevHuman(client, server.issuer)
        signin = await admin.follow(f"{server.issuer}/console")
        await admin.post("/login/dev", {"csrf": signin.csrf, "email": ADMIN, "return_to": "/console"})
        await _counted(admin, server, "anonymous 3")

    # The same in Chromium: the non-admin sees the 403 page.
    stranger = await (await new_context(viewport=DESKTOP)).new_page()
    await _dev_sign_in(stranger, server, OTHER)
    assert await stranger.locator("main h1").inner_text() == "Not an operator"
    await _screens(stranger, "403")

    desktop = await (await new_context(viewport=DESKTOP)).new_page()
    phone = await (await new_context(viewport=PHONE)).new_page()
    for page in (desktop, phone):
        await _dev_sign_in(page, server, ADMIN.lower())
    for page, small in ((desktop, False), (phone, True)):
        assert await page.locator("main h1").inner_text() == "Overview"
        assert await page.locator("figure.chart svg[role=img]").count() >= 8
        desc = await page.locator("#registrations-d").text_content()
        assert desc is not None and "anonymous 3" in desc, desc
        assert "<script" not in await page.content()
        await _screens(page, "overview", small)
    for window in ("day", "week"):  # hour buckets, and six-hour buckets summed from them
        await desktop.get_by_role("link", name=f"last {window}").click()
        shown = await desktop.locator("#registrations-d").text_content()
        assert shown is not None and "anonymous 3" in shown, (window, shown)
    await _screens(desktop, "overview-week")

    # Search: by account id, by email, by a part of the agent's name.
    account_id = docs["account"]["id"]
    for query, found in ((account_id, account_id), (OTHER.upper(), kept["account"]["id"]), ("docs B", account_id)):
        await desktop.get_by_role("link", name="Search").click()
        await desktop.get_by_label("Account or registration id, email, or agent name").fill(query)
        await desktop.get_by_role("button", name="Search").click()
        await desktop.get_by_role("link", name=found).first.wait_for()
    assert "Docs bot" in await desktop.inner_text("main")
    await _screens(desktop, "search")
    await phone.goto(f"{server.origin}/console/search?q=bot")
    await _screens(phone, "search", phone=True)

    # The account: its registration and events; Revoke asks first.
    await desktop.get_by_role("link", name=account_id).click()
    assert await desktop.locator("main h1").inner_text() == "Account"
    main = await desktop.inner_text("main")
    assert docs["id"] in main and "agent_registration.created" in main
    await _screens(desktop, "account")
    await phone.goto(f"{server.origin}/console/account?id={account_id}")
    await _screens(phone, "account", phone=True)
    await phone.get_by_role("button", name="Revoke…").click()
    assert await phone.locator("main h1").inner_text() == "Revoke this registration?"
    await _screens(phone, "confirm", phone=True)

    await desktop.get_by_role("button", name="Revoke…").click()
    assert await desktop.locator("main h1").inner_text() == "Revoke this registration?"
    await _screens(desktop, "confirm")
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        assert (await agent.api("GET", "/notes", docs_access)).status_code == 200  # the first step revoked nothing
        await desktop.get_by_role("button", name="Revoke", exact=True).click()
        assert await desktop.locator("main h1").inner_text() == "Revoked"
        await _screens(desktop, "revoked")
        assert (await agent.api("GET", "/notes", docs_access)).status_code == 401
        await agent.token(docs["identity"]["assertion"], expect=400)
        # The audit trail names the console's operator.
        events = await client.get(
            f"{server.issuer}/admin/v1/events",
            params={"type": "operator.action"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert events.status_code == 200, events.text
        (action,) = events.json()["data"]
        assert action["registration_id"] == docs["id"] and action["data"]["operator"] == "console:ops@example.com"
        assert action["data"]["action"] == "revoke"
    await desktop.get_by_role("link", name="Back to the account").click()
    timeline = await desktop.inner_text("ol.timeline")
    assert timeline.index("operator.action") < timeline.index("agent_registration.created")  # newest first

    await desktop.get_by_role("link", name="Providers").click()
    assert await desktop.locator("main h1").inner_text() == "Providers"


async def test_a_post_without_the_sessions_csrf_token_changes_nothing(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = dev_console(start_server, tmp_path)
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        reg = await agent.register({"type": "anonymous", "agent": {"name": "Docs bot"}})
        access = (await agent.token(reg["identity"]["assertion"]))["access_token"]
        admin = DevHuman(client, server.issuer)
        signin = await admin.follow(f"{server.issuer}/console/account?id={reg['account']['id']}")
        page = await admin.post(
            "/login/dev", {"csrf": signin.csrf, "email": ADMIN, "return_to": signin.form("/login/dev")["return_to"]}
        )
        assert page.title == "Account"
        fields = page.form("/console/revoke")
        confirm = await admin.post("/console/revoke", fields)
        assert confirm.title == "Revoke this registration?"
        for csrf in ("", "not-this-one", fields["csrf"][:-1]):
            refused = await admin.post(
                "/console/revoke/confirm", {**confirm.form("/console/revoke/confirm"), "csrf": csrf}
            )
            assert refused.status == 400 and "this form has expired" in refused.text, refused.text
        # Another browser's session (no cookie at all), with the right token: refused too.
        stranger = DevHuman(client, server.issuer)
        assert (await stranger.post("/console/revoke/confirm", confirm.form("/console/revoke/confirm"))).status == 400
        # A signed-in person who is not an operator, with their own session's valid token: 403.
        other = await stranger.follow(f"{server.issuer}/console")
        mine = await stranger.post("/login/dev", {"csrf": other.csrf, "email": OTHER, "return_to": "/console"})
        assert mine.status == 403
        ids = {k: v for k, v in confirm.form("/console/revoke/confirm").items() if k != "csrf"}
        for path in ("/console/revoke", "/console/revoke/confirm"):
            forbidden = await stranger.post(path, {**ids, "csrf": mine.csrf})
            assert forbidden.status == 403 and forbidden.title == "Not an operator", path
        assert (await agent.api("GET", "/notes", access)).status_code == 200  # nothing changed
        after = await admin.follow(f"{server.issuer}/console/account?id={reg['account']['id']}")
        assert "operator.action" not in after.text and ">active<" in after.text

        # Every console page: the strict CSP first, no script, no store, the same headers as the human pages.
        for path in (*CONSOLE_GETS, f"/console/search?q={reg['id']}", f"/console/account?id={reg['account']['id']}"):
            r = await admin._send("GET", f"{server.issuer}{path}")
            assert r.status_code == 200, (path, r.text)
            assert r.headers["content-security-policy"].startswith("default-src 'none'; "), path
            assert "script-src" not in r.headers["content-security-policy"] and "<script" not in r.text.lower()
            assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
        # Signed out: the console sends the browser to sign in, and back to the page asked for.
        r = await client.get(f"{server.issuer}/console/search?q=x", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?return_to=%2Fconsole%2Fsearch%3Fq%3Dx"
        assert r.headers["content-security-policy"].startswith("default-src 'none'")


async def test_the_console_behind_the_real_provider_over_https(
    start_server: StartServer, oidc_provider: OidcProvider, tls_files: TlsFiles
) -> None:
    """As a deployment runs it (https, so not dev mode; sign-in at the OpenID Connect provider): only the
    listed operator gets in."""
    require_browser()
    tls = {"AUTHMD_TLS_CERT_FILE": str(tls_files.cert), "AUTHMD_TLS_KEY_FILE": str(tls_files.key)}
    env = {**tls, "AUTHMD_ISSUER": "https://127.0.0.1:{port}", "AUTHMD_CONSOLE_ADMINS": "ops@example.com"}
    server = start_with_oidc(start_server, oidc_provider, env, verify=tls_files.client_context())
    async with launch_browser([tls_files.chromium_trust_arg()]) as chromium:
        for login, title in ((OTHER, "Not an operator"), ("OPS@example.com", "Overview")):
            context = await chromium.new_context(viewport=DESKTOP)
            page = await context.new_page()
            await page.goto(f"{server.origin}/console")
            await page.wait_for_selector('input[name="login"]')
            await _sign_in_at_provider(page, login)
            await _back_at(page, server, title)
            again = await page.reload()  # the status of the page the provider sent the browser back to
            assert again is not None and again.status == (403 if title == "Not an operator" else 200)
            assert "Development mode" not in await page.inner_text("main")
            await screenshot(page, f"console-oidc-{again.status}")
            await context.close()

    # Outside dev mode with nobody listed, the console is closed to everyone and says what to set.
    nobody = {k: v for k, v in env.items() if k != "AUTHMD_CONSOLE_ADMINS"}
    closed = start_with_oidc(start_server, oidc_provider, nobody, verify=tls_files.client_context())
    async with httpx.AsyncClient(timeout=10.0, verify=tls_files.client_context()) as client:
        callback = await sign_in_http(client, closed, "ops@example.com", "/console")
        assert (await client.get(callback, follow_redirects=False)).headers["location"] == "/console"
        r = await client.get(f"{closed.issuer}/console")
        assert r.status_code == 403 and "console_admins" in r.text and "ops@example.com" in r.text


async def test_the_providers_page_shows_the_keys_as_fetched(
    start_server: StartServer, provider: TestProvider, tmp_path: Path
) -> None:
    config = tmp_path / "providers.toml"
    config.write_text(
        f'[[providers]]\nissuer = "{provider.issuer}"\nname = "Agent <Platform>"\nclient_ids = ["agent-cli"]\n'
        'scopes = ["notes:read"]\n'
    )
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_CONSOLE_ADMINS": ADMIN, "AUTHMD_CONFIG": str(config)})
    async with httpx.AsyncClient(timeout=10.0) as client:
        admin = DevHuman(client, server.issuer)
        signin = await admin.follow(f"{server.issuer}/console/providers")
        before = await admin.post(
            "/login/dev", {"csrf": signin.csrf, "email": ADMIN, "return_to": "/console/providers"}
        )
        assert before.title == "Providers" and "Agent &lt;Platform&gt;" in before.text
        assert "not fetched yet by this instance" in before.text and provider.kid not in before.text
        jag = provider.mint_id_jag("console-1", aud=server.issuer, email="p1@example.com")
        body = {"type": "identity_assertion", "assertion_type": ID_JAG, "assertion": jag}
        assert (await client.post(f"{server.issuer}/agent/identity", json=body)).status_code == 200
        after = await admin.follow(f"{server.issuer}/console/providers")
        assert provider.kid in after.text and provider.jwks_uri in after.text
        assert "not fetched yet" not in after.text and "last fetch failed" not in after.text


async def test_dev_mode_without_operators_lets_everyone_in_and_says_so(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    async with httpx.AsyncClient(timeout=10.0) as client:
        anyone = DevHuman(client, server.issuer)
        signin = await anyone.follow(f"{server.issuer}/console/search?q=nobody")
        page = await anyone.post(
            "/login/dev", {"csrf": signin.csrf, "email": OTHER, "return_to": signin.form("/login/dev")["return_to"]}
        )
        assert (
            page.status == 200 and page.title == "Search" and "Nothing found for <strong>nobody</strong>" in page.text
        )
        assert "everyone signed in with the development sign-in is an operator" in page.text
