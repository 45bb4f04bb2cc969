"""Input hygiene for what humans see (issue 10), against the real server on SQLite and on Redis.

Emails with NUL, control, bidi or zero-width characters are refused wherever they enter (a
``login_hint`` at registration and at claim start, the dev sign-in form, the OpenID provider's email
claim, an ID-JAG's verified email) and nothing is created; an agent's name or platform that could
hide, reorder or overdraw text is refused at registration; one that merely looks like something else
(``✔ Verified``, a Cyrillic ``\\u0410``, an all-Cyrillic word) is shown flagged with its exact code points.
"Nothing is created" is read back with ``authmd admin list`` on the server's own store.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, ServerProcess, StartServer
from tests.helpers import Agent, DevHuman, Page
from tests.oidc_server import OidcProviderFactory, alogin_via_http
from tests.provider import TestProvider

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

IDENTITY = "/agent/identity"
URN_ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"

# Addresses that today's simple checks let through (no whitespace, one "@"), each hiding a character
# a person cannot see or that reorders what they see; with the code point the refusal must name.
POISONED = [
    ("ada\x00@example.com", "U+0000"),
    ("ada@exa\u202eelpmaxe.com", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\u2066ada@example.com\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("ada\u200b@example.com", "U+200B ZERO WIDTH SPACE"),
    ("\ufeffada@example.com", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("ada@example.com@evil.example", "exactly one @"),
]


def accounts(server: ServerProcess) -> list[dict[str, Any]]:
    """Every live account in the server's store, read by the operator's command."""
    proc = subprocess.run(
        [sys.executable, "-m", "app", "admin", "list", "--json"],
        cwd=ROOT,
        env=server.environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    listed: list[dict[str, Any]] = json.loads(proc.stdout)["accounts"]
    return listed


def assert_refused(response: httpx.Response, status: int, code: str, mention: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and mention in body["error_description"], body


async def test_a_poisoned_login_hint_is_refused_and_changes_nothing(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({**store_env, "AUTHMD_POW_MODE": "off"})
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        for hint, named in POISONED:
            r = await agent.post_json(IDENTITY, {"type": "service_auth", "login_hint": hint})
            assert_refused(r, 400, "invalid_login_hint", named)
        assert accounts(server) == []  # no temporary account, no claim

        # A claim with a good attempt under way: a poisoned start neither replaces nor kills it.
        reg = await agent.register()
        first = (await agent.start_claim(reg["claim"]["token"], "ada@example.com"))["attempt"]
        for hint, named in POISONED:
            r = await agent.post_json(
                "/agent/identity/claim",
                {"type": "service_auth", "claim_token": reg["claim"]["token"], "login_hint": hint},
            )
            assert_refused(r, 400, "invalid_login_hint", named)
        page = await DevHuman(client, server.issuer).open_link(first["verification_uri"], "ada@example.com")
        assert page.status == 200 and page.title == "Authorize this agent?", page.text


async def test_the_dev_sign_in_refuses_a_poisoned_email(start_server: StartServer, store_env: dict[str, str]) -> None:
    server = start_server({**store_env, "AUTHMD_POW_MODE": "off"})
    async with httpx.AsyncClient(timeout=10.0) as client:
        human = DevHuman(client, server.issuer)
        form = await human.follow(f"{server.issuer}/login?return_to=/account")
        assert form.title == "Development sign-in"
        for email, named in POISONED:
            page = await human.post("/login/dev", {"csrf": form.csrf, "email": email, "return_to": "/account"})
            assert page.status == 400 and named in page.text, page.text
            assert email not in page.text  # named by its code points, never echoed
        # Still nobody: the account page sends the browser back to the sign-in form.
        assert (await human.follow(f"{server.issuer}/account")).title == "Development sign-in"
    assert accounts(server) == []


async def test_lookalike_agent_names_are_flagged_with_their_code_points(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({**store_env, "AUTHMD_POW_MODE": "off"})
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        human = DevHuman(client, server.issuer)
        pages: list[Page] = []
        # A symbol posing as a badge with a mixed-script platform; then a whole-script confusable
        # ("\\u0430\\u0441\\u0435" is all Cyrillic and reads "ace") next to a plain ASCII platform.
        for name, platform in (("✔ Verified", "\u0410pple"), ("\u0430\u0441\u0435", "pytest")):
            reg = await agent.register({"type": "anonymous", "agent": {"name": name, "platform": platform}})
            attempt = (await agent.start_claim(reg["claim"]["token"], "ada@example.com"))["attempt"]
            page = await human.open_link(attempt["verification_uri"], "ada@example.com")
            assert page.title == "Authorize this agent?", page.text
            pages.append(page)
            code = (await human.authorize(page)).code
            assert (await agent.complete_claim(reg["claim"]["token"], code))["status"] == "claimed"

        badge, cyrillic = pages[0].text, pages[1].text
        assert badge.count("look-alike characters</span>") == 2  # the name and the platform
        assert "\\u2714 Verified" in badge and "U+2714 HEAVY CHECK MARK" in badge
        assert "\\u0410pple" in badge and "U+0410 CYRILLIC CAPITAL LETTER A" in badge
        assert cyrillic.count("look-alike characters</span>") == 1  # "pytest" is plain ASCII
        assert "\\u0430\\u0441\\u0435" in cyrillic and "U+0441 CYRILLIC SMALL LETTER ES" in cyrillic

        listing = (await human.follow(f"{server.issuer}/account")).text
        assert listing.count("look-alike characters</span>") == 2, listing
        assert "U+2714 HEAVY CHECK MARK" in listing and "U+0435 CYRILLIC SMALL LETTER IE" in listing


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("name", "bot\x00", "U+0000"),
        ("name", "\x1b[2Jbot", "U+001B"),
        ("name", "Claude \u202eedoC", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("platform", "cli\u200b", "U+200B ZERO WIDTH SPACE"),
        ("platform", "cli\u2028Verified", "U+2028 LINE SEPARATOR"),
        ("name", "Z\u0336\u0337\u0338\u0335\u0334", "combining marks"),  # UTS #39 §5.4: overdraws the page
        ("name", "x" * 65, "longer than 64"),
    ],
)
async def test_agent_fields_that_hide_reorder_or_overdraw_text_are_refused(
    start_server: StartServer, store_env: dict[str, str], field: str, value: str, named: str
) -> None:
    server = start_server({**store_env, "AUTHMD_POW_MODE": "off"})
    async with httpx.AsyncClient(timeout=10.0) as client:
        r = await client.post(f"{server.issuer}{IDENTITY}", json={"type": "anonymous", "agent": {field: value}})
        assert_refused(r, 400, "invalid_request", named)
        assert f"agent.{field}" in r.json()["error_description"]
    assert accounts(server) == []


@pytest.mark.parametrize("claims_in_id_token", [False, True], ids=["claims-from-userinfo", "claims-in-id-token"])
async def test_an_openid_sign_in_with_a_poisoned_email_is_refused(
    start_server: StartServer,
    store_env: dict[str, str],
    oidc_provider_factory: OidcProviderFactory,
    claims_in_id_token: bool,
) -> None:
    """The real provider (node oidc-provider) vouches, verified, for addresses with a bidi override
    and with a NUL, from UserInfo or in the ID token: neither signs in nor creates a person; a clean
    address still does."""
    provider = oidc_provider_factory(
        ["http://127.0.0.1:1/unused"],
        accounts={
            "mallory": {"email": "ada@exa\u202eelpmaxe.com", "email_verified": True},
            "nul": {"email": "ada\x00@example.com", "email_verified": True},
        },
        claims_in_id_token=claims_in_id_token,
    )
    client_id, secret = f"authmd-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    server = start_server(
        {
            **store_env,
            "AUTHMD_POW_MODE": "off",
            "AUTHMD_OIDC_ISSUER": provider.issuer,
            "AUTHMD_OIDC_CLIENT_ID": client_id,
            "AUTHMD_OIDC_CLIENT_SECRET": secret,
        }
    )
    provider.register_client([f"{server.origin}/oidc/callback"], client_id=client_id, client_secret=secret)

    async def sign_in(client: httpx.AsyncClient, login: str) -> httpx.Response:
        r = await client.get(f"{server.issuer}/login", params={"return_to": "/account"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        callback = await alogin_via_http(client, r.headers["location"], login)
        return await client.get(callback, follow_redirects=False)

    for login, named in (("mallory", "U+202E RIGHT-TO-LEFT OVERRIDE"), ("nul", "U+0000")):
        async with httpx.AsyncClient(timeout=10.0) as client:
            r = await sign_in(client, login)
            assert r.status_code == 400 and named in r.text, r.text
            assert (await client.get(f"{server.issuer}/account", follow_redirects=False)).status_code == 303
    assert accounts(server) == []

    async with httpx.AsyncClient(timeout=10.0) as client:
        assert (await sign_in(client, "ada@example.com")).status_code == 303  # the setup works
    assert [a["owner_email"] for a in accounts(server)] == ["ada@example.com"]


async def test_an_id_jag_with_a_poisoned_email_is_refused(
    start_server: StartServer, store_env: dict[str, str], provider: TestProvider, tmp_path: Path
) -> None:
    """A trusted agent platform vouching for a verified but poisoned email creates no person."""
    config = tmp_path / "authmd.toml"
    config.write_text(
        f'[[providers]]\nissuer = "{provider.issuer}"\nclient_ids = ["agent-cli"]\nscopes = ["notes:read"]\n'
    )
    server = start_server({**store_env, "AUTHMD_POW_MODE": "off", "AUTHMD_CONFIG": str(config)})
    async with httpx.AsyncClient(timeout=10.0) as client:

        async def register(email: str) -> httpx.Response:
            jag = provider.mint_id_jag("agent-user-1", aud=server.issuer, email=email)
            body = {"type": "identity_assertion", "assertion_type": URN_ID_JAG, "assertion": jag}
            return await client.post(f"{server.issuer}{IDENTITY}", json=body)

        for email, named in POISONED:
            assert_refused(await register(email), 400, "missing_verified_email", named)
        assert accounts(server) == []
        assert (await register("ada@example.com")).status_code == 200  # the same subject, clean: works
    assert [a["owner_email"] for a in accounts(server)] == ["ada@example.com"]
