"""The human pages on day one (issue 12), against real parts: the `authmd serve` process, real Chromium at
phone width (375 by 740 pixels, screenshots in test-artifacts/screenshots/), the loopback test provider serving
the operator's logo, and plain HTTP for every header.

What a person sees: every page names the service (its display name and logo), `/` says what the service
is, the account page describes accounts and agents in words with grammatical counts, Revoke asks first,
nothing is wider than a phone and no id or tag breaks across lines, and the claim link's secret leaves
the address bar and the history at the first response.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.browser import screenshot
from tests.e2e.conftest import ServerProcess, StartServer
from tests.e2e.test_human_claim import navigation_history
from tests.helpers import Agent, DevHuman, Page
from tests.provider import TestProvider

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PHONE = {"width": 375, "height": 740}
HTML = "text/html; charset=utf-8"
NAME = "Acme Notes"
LOGO_PATH = "/brand/logo.png"
LONG_NAME = "ResearchHelper" * 4 + "Research"


def _png(width: int = 64, height: int = 32) -> bytes:
    """A small solid-colour PNG (the operator's logo in these tests)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x1a\x56\xdb" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def branded(start_server: StartServer, provider: TestProvider) -> tuple[ServerProcess, str]:
    """A dev-mode server named "Acme Notes" whose logo the test provider serves: (server, logo URL)."""
    logo = provider.serve_bytes(LOGO_PATH, _png(), "image/png")
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_SERVICE_NAME": NAME, "AUTHMD_LOGO_URL": logo})
    return server, logo


def claim_token_of(verification_uri: str) -> str:
    """The claim-attempt token inside an agent's link (``/login?return_to=/claim?claim_attempt_token=…``)."""
    return_to = parse_qs(urlsplit(verification_uri).query)["return_to"][0]
    return parse_qs(urlsplit(return_to).query)["claim_attempt_token"][0]


# What is wider than the viewport (a horizontal scroll on a phone), and on how many lines a text lies.
_TOO_WIDE = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.body.querySelectorAll('*')]
    .filter(e => e.getBoundingClientRect().right > width + 0.5)
    .map(e => `${e.tagName}.${e.className}: ${e.textContent.slice(0, 40)}`);
  return {scrollWidth: document.documentElement.scrollWidth, width, wide};
}"""
_LINES = """(needle) => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const lines = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    for (let i = node.data.indexOf(needle); i >= 0; i = node.data.indexOf(needle, i + 1)) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + needle.length);
      lines.push(new Set([...range.getClientRects()].map(r => Math.round(r.top))).size);
    }
  }
  return lines;
}"""


async def assert_fits_a_phone(page: Any, unbroken: list[str]) -> None:
    """Nothing wider than the viewport, and each of ``unbroken`` (ids, tags) shown, each on one line."""
    layout = await page.evaluate(_TOO_WIDE)
    assert layout["scrollWidth"] <= layout["width"] and layout["wide"] == [], layout
    for text in unbroken:
        lines = await page.evaluate(_LINES, text)
        assert lines and all(n == 1 for n in lines), (text, lines)


async def phone_page(new_context: Any) -> Any:
    return await (await new_context(viewport=PHONE)).new_page()


async def claim_in_browser(page: Any, agent: Agent, reg: dict[str, Any], email: str) -> dict[str, Any]:
    """The human opens the agent's link in ``page``, signs in with the development form if asked,
    authorizes and reads the code back: the agent's completion body."""
    uri = (await agent.start_claim(reg["claim"]["token"], email))["attempt"]["verification_uri"]
    await page.goto(uri)
    if await page.locator("main h1").first.inner_text() == "Development sign-in":
        await page.get_by_label("Email").fill(email)
        await page.get_by_role("button", name="Continue").click()
    await page.get_by_role("button", name="Authorize").click()
    code = "".join(c for c in await page.locator(".code").inner_text() if c.isdigit())
    done: dict[str, Any] = await agent.complete_claim(reg["claim"]["token"], code)
    assert done["status"] == "claimed"
    return done


async def test_every_html_response_names_the_service_and_sends_one_charset(
    start_server: StartServer, provider: TestProvider
) -> None:
    server, logo = branded(start_server, provider)
    seen: list[httpx.Response] = []

    async def record(response: httpx.Response) -> None:
        await response.aread()
        seen.append(response)

    async with httpx.AsyncClient(timeout=10.0, event_hooks={"response": [record]}) as client:
        await client.get(f"{server.issuer}/")
        agent = Agent(client, server.issuer)
        reg = await agent.register({"type": "anonymous", "agent": {"name": "Docs bot"}})
        access = (await agent.token(reg["identity"]["assertion"]))["access_token"]
        human = DevHuman(client, server.issuer)
        attempt = await agent.start_claim(reg["claim"]["token"], "ada@example.com")
        page = await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com")
        assert page.title == "Authorize this agent?"
        code = (await human.authorize(page)).code
        done = await agent.complete_claim(reg["claim"]["token"], code)
        listing = await human.follow(f"{server.issuer}/account")
        ids = {"account_id": reg["account"]["id"], "registration_id": reg["id"]}
        unknown = await human.post("/account/revoke/confirm", {"csrf": listing.csrf, **ids, "registration_id": "reg_x"})
        assert unknown.status == 404 and "no such agent in this account" in unknown.text
        confirm = await human.post("/account/revoke", {"csrf": listing.csrf, **ids})
        assert confirm.title == "Revoke this agent?"
        # The first step revoked nothing: the agent's grant still works.
        claimed = (await agent.token(done["identity"]["assertion"]))["access_token"]
        assert (await agent.api("GET", "/notes", claimed)).status_code == 200
        after = await human.post("/account/revoke/confirm", confirm.form("/account/revoke/confirm"))
        assert after.title == "Your agents and accounts"
        assert (await agent.api("GET", "/notes", claimed)).status_code == 401
        refused = await human.post("/logout", {"csrf": "not-this-one"})
        assert refused.status == 400
        await human.post("/logout", {"csrf": after.csrf})
        stranger = DevHuman(client, server.issuer)
        assert (await stranger.follow(f"{server.issuer}/claim")).title == "No claim in progress"
        assert (await agent.api("GET", "/notes", access)).status_code == 401  # the claim ended the old token

    pages = [
        r
        for r in seen
        if r.url.path in {"/", "/login", "/login/dev", "/logout"} or r.url.path.startswith(("/claim", "/account"))
    ]
    titles = {Page(r).title for r in pages if r.status_code != 303}
    assert titles >= {
        NAME,
        "Development sign-in",
        "Authorize this agent?",
        "Your code",
        "Your agents and accounts",
        "Revoke this agent?",
        "Something went wrong",
        "Signed out",
        "No claim in progress",
    }, titles
    origin = f"{urlsplit(logo).scheme}://{urlsplit(logo).netloc}"
    for r in pages:
        where = f"{r.request.method} {r.url.path} → {r.status_code}"
        assert r.headers.get_list("content-type") == [HTML], where
        csp = r.headers["content-security-policy"]
        if r.status_code == 303:
            assert "img-src" not in csp and r.text == "", where
            continue
        assert f"img-src {origin}; " in csp and csp.count("img-src") == 1, where
        assert f'<img src="{logo}" alt="{NAME} logo">' in r.text, where
        assert f" · {NAME}</title>" in r.text, where
        assert r.text.count(NAME) >= 2, where  # beside the logo and in the footer


async def test_the_landing_page_says_what_this_is_at_phone_width(
    start_server: StartServer, provider: TestProvider, new_context: Any
) -> None:
    server, _ = branded(start_server, provider)
    page = await phone_page(new_context)
    response = await page.goto(f"{server.issuer}/")
    assert response is not None and response.status == 200
    assert await page.locator("main h1").inner_text() == NAME
    body = await page.inner_text("main")
    assert "lets AI agents sign themselves up" in body and "claim it later" in body
    # The operator's logo loads under the pages' CSP, with the service's name as its alt text.
    image = page.get_by_role("img", name=f"{NAME} logo")
    assert await image.evaluate("img => img.complete && img.naturalWidth") == 64
    assert provider.hits(LOGO_PATH) >= 1
    await screenshot(page, "day-one-landing-phone")
    await assert_fits_a_phone(page, [NAME])
    # The agents' contract is one click away.
    await page.get_by_role("link", name=f"{server.issuer}/auth.md").click()
    await page.wait_for_url(f"{server.issuer}/auth.md")
    assert NAME in await page.inner_text("h1")


async def test_the_claim_links_secret_never_stays_in_the_address_bar_or_history(
    start_server: StartServer, new_context: Any
) -> None:
    """Dev mode, the human not signed in yet: the first response to the link moves its token into the
    session and sends the browser to a URL without it; the claim still works end to end."""
    server = start_server({"AUTHMD_POW_MODE": "off"})
    page = await phone_page(new_context)
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        reg = await agent.register({"type": "anonymous", "agent": {"name": "Docs bot", "platform": "pytest"}})
        uri = (await agent.start_claim(reg["claim"]["token"], "ada@example.com"))["attempt"]["verification_uri"]
        secret = claim_token_of(uri)

        response = await page.goto(uri)
        assert response is not None and response.status == 200
        assert await page.locator("main h1").inner_text() == "Development sign-in"
        assert secret not in page.url and page.url == f"{server.issuer}/login?return_to=%2Fclaim"
        assert not [u for u in await navigation_history(page) if secret in u]
        await screenshot(page, "day-one-dev-sign-in-phone")
        await assert_fits_a_phone(page, ["Development sign-in"])

        await page.get_by_label("Email").fill("ada@example.com")
        await page.get_by_role("button", name="Continue").click()
        await page.wait_for_url(f"{server.issuer}/claim")
        assert await page.locator("main h1").inner_text() == "Authorize this agent?"
        body = await page.inner_text("main")
        assert "An agent calling itself Docs bot created a temporary account here" in body
        assert "Unless you claim it, it is deleted with everything in it in 59 minutes" in body
        await screenshot(page, "day-one-claim-phone")
        await assert_fits_a_phone(page, [reg["id"], "unverified", "ada@example.com"])

        await page.get_by_role("button", name="Authorize").click()
        code = "".join(c for c in await page.locator(".code").inner_text() if c.isdigit())
        assert "expires in 10 minutes" in await page.inner_text("main")
        await screenshot(page, "day-one-code-phone")
        await assert_fits_a_phone(page, [f"{code[:3]} {code[3:]}"])
        assert (await agent.complete_claim(reg["claim"]["token"], code))["status"] == "claimed"
        history = await navigation_history(page)
        assert len(history) >= 2 and not [u for u in history if secret in u], history
    assert secret not in server.read_log()


async def test_the_account_page_in_words_at_phone_width_and_revoke_asks_first(
    start_server: StartServer, new_context: Any
) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    page = await phone_page(new_context)
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        grants = {}
        # A name of 64 letters without a space (the longest an agent may choose) still fits a phone.
        for name, notes in (("Docs bot", 1), (LONG_NAME, 2)):
            reg = await agent.register({"type": "anonymous", "agent": {"name": name, "platform": "pytest"}})
            access = (await agent.token(reg["identity"]["assertion"]))["access_token"]
            for i in range(notes):
                assert (await agent.api("POST", "/notes", access, json={"text": f"n{i}"})).status_code == 201
            done = await claim_in_browser(page, agent, reg, "ada@example.com")
            grants[name] = (reg, (await agent.token(done["identity"]["assertion"]))["access_token"])

        await page.goto(f"{server.issuer}/account")
        body = await page.inner_text("main")
        assert "anonymous" not in body  # a claimed agent is not tagged by how it first signed up
        assert body.count("claimed by you") == 2 and body.count("An agent created it") == 2
        assert "It holds 1 note." in body and "It holds 2 notes." in body and "1 notes" not in body
        assert "Your own account" not in body  # never used: not shown
        await screenshot(page, "day-one-account-phone")
        docs, research = grants["Docs bot"][0], grants[LONG_NAME][0]
        ids = [docs["id"], docs["account"]["id"], research["id"], research["account"]["id"]]
        await assert_fits_a_phone(page, [*ids, "claimed by you", "active"])

        # Revoke asks first; the first POST revokes nothing.
        await page.locator("li", has_text="Docs bot").get_by_role("button", name="Revoke").click()
        assert await page.locator("main h1").inner_text() == "Revoke this agent?"
        assert "Docs bot loses access at once" in await page.inner_text("main")
        await screenshot(page, "day-one-revoke-confirm-phone")
        await assert_fits_a_phone(page, [docs["id"]])
        assert (await agent.api("GET", "/notes", grants["Docs bot"][1])).status_code == 200
        await page.get_by_role("link", name="Cancel").click()
        await page.wait_for_url(f"{server.issuer}/account")
        assert (await agent.api("GET", "/notes", grants["Docs bot"][1])).status_code == 200

        await page.locator("li", has_text="Docs bot").get_by_role("button", name="Revoke").click()
        await page.get_by_role("button", name="Revoke access").click()
        await page.wait_for_url(f"{server.issuer}/account")
        assert "revoked" in await page.locator("li", has_text="Docs bot").inner_text()
        assert (await agent.api("GET", "/notes", grants["Docs bot"][1])).status_code == 401
        assert (await agent.api("GET", "/notes", grants[LONG_NAME][1])).status_code == 200
