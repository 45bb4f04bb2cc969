"""The human authorizes what they reviewed (issue 10 § 2): the claim page's Authorize and deny forms
carry the attempt they were rendered for, so a second link opened in another tab of the same browser
(same session) cannot redirect the click to another agent's claim."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerProcess, StartServer
from tests.helpers import DevHuman, Page

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

EMAIL = "ada@example.com"


async def _agent_with_attempt(client: httpx.AsyncClient) -> tuple[str, str]:
    """(claim token, verification URI) of a fresh anonymous registration with an attempt bound to EMAIL."""
    r = await client.post("/agent/identity", json={"type": "anonymous"})
    assert r.status_code == 200, r.text
    token = r.json()["claim"]["token"]
    r = await client.post(
        "/agent/identity/claim", json={"type": "service_auth", "claim_token": token, "login_hint": EMAIL}
    )
    assert r.status_code == 200, r.text
    return token, r.json()["attempt"]["verification_uri"]


async def _status(client: httpx.AsyncClient, token: str) -> str:
    r = await client.post("/agent/identity/claim/status", json={"claim_token": token})
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


async def _two_tabs(server: ServerProcess, client: httpx.AsyncClient) -> tuple[Any, DevHuman, Page]:
    """Agents A and B; the human opens A's link, then B's in another tab of the same browser."""
    a_token, a_link = await _agent_with_attempt(client)
    b_token, b_link = await _agent_with_attempt(client)
    human = DevHuman(client, server.issuer)
    page_a = await human.open_link(a_link, EMAIL)
    assert page_a.title == "Authorize this agent?", page_a.text
    page_b = await human.follow(b_link)
    assert page_b.title == "Authorize this agent?", page_b.text
    return (a_token, b_token), human, page_a


async def test_authorize_acts_on_the_attempt_the_page_showed(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off", **store_env})
    async with httpx.AsyncClient(base_url=server.origin, timeout=10.0) as client:
        (a_token, b_token), human, page_a = await _two_tabs(server, client)
        shown = await human.post("/claim/confirm", page_a.form("/claim/confirm"))
        assert shown.title == "Your code", shown.text
        assert await _status(client, a_token) == "confirmed"
        assert await _status(client, b_token) == "pending"
        r = await client.post("/agent/identity/claim/complete", json={"claim_token": a_token, "user_code": shown.code})
        assert r.status_code == 200, r.text


async def test_deny_acts_on_the_attempt_the_page_showed(start_server: StartServer, store_env: dict[str, str]) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off", **store_env})
    async with httpx.AsyncClient(base_url=server.origin, timeout=10.0) as client:
        (a_token, b_token), human, page_a = await _two_tabs(server, client)
        denied = await human.post("/claim/deny", page_a.form("/claim/deny"))
        assert denied.title == "Access revoked", denied.text
        assert await _status(client, a_token) == "denied"
        assert await _status(client, b_token) == "pending"


async def test_a_form_naming_no_attempt_of_this_browser_changes_nothing(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off", **store_env})
    async with httpx.AsyncClient(base_url=server.origin, timeout=10.0) as client:
        (a_token, b_token), human, page_a = await _two_tabs(server, client)
        for forged in ({"csrf": page_a.csrf}, {**page_a.form("/claim/confirm"), "attempt": "x" * 22}):
            page = await human.post("/claim/confirm", forged)
            assert page.status == 400, page.text
            assert "open the link" in page.text.lower(), page.text
        assert await _status(client, a_token) == "pending"
        assert await _status(client, b_token) == "pending"
