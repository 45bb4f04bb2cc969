"""Limits on claim attempts under concurrency (revision 2): a claim holds at most
``claim_max_live_attempts`` live attempts however many starts race, and a browser session holds at
most the last 4 attempts it opened (an older page's buttons then act on nothing)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.e2e.conftest import StartServer
from tests.helpers import DevHuman

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

EMAIL = "ada@example.com"


async def test_racing_starts_never_exceed_the_live_attempt_cap(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_WORKERS": "2", **store_env})
    limits = httpx.Limits(max_connections=30)
    async with httpx.AsyncClient(base_url=server.origin, timeout=30.0, limits=limits) as client:
        token = (await client.post("/agent/identity", json={"type": "anonymous"})).json()["claim"]["token"]
        start = {"type": "service_auth", "claim_token": token, "login_hint": EMAIL}
        responses = await asyncio.gather(*(client.post("/agent/identity/claim", json=start) for _ in range(15)))
        outcomes = Counter((r.status_code, r.json().get("error")) for r in responses)
        assert outcomes == {(200, None): 3, (429, "too_many_attempts"): 12}, outcomes
        # The three links are distinct and each leads to the claim page.
        links = {r.json()["attempt"]["verification_uri"] for r in responses if r.status_code == 200}
        assert len(links) == 3


async def test_a_browser_holds_the_last_four_attempts_it_opened(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off", **store_env})
    async with httpx.AsyncClient(base_url=server.origin, timeout=10.0) as client:
        human = DevHuman(client, server.issuer)
        pages = []
        for n in range(6):  # six agents' links opened in one browser
            token = (await client.post("/agent/identity", json={"type": "anonymous"})).json()["claim"]["token"]
            start = {"type": "service_auth", "claim_token": token, "login_hint": EMAIL}
            link = (await client.post("/agent/identity/claim", json=start)).json()["attempt"]["verification_uri"]
            page = await (human.open_link(link, EMAIL) if n == 0 else human.follow(link))
            assert page.title == "Authorize this agent?", page.text
            pages.append(page)
        # The two oldest pages name attempts the session no longer holds: nothing happens.
        for old in pages[:2]:
            refused = await human.post("/claim/confirm", old.form("/claim/confirm"))
            assert refused.status == 400 and "open the link" in refused.text.lower(), refused.text
        # The four newest still act on exactly what they showed.
        for recent in pages[2:]:
            assert (await human.authorize(recent)).title == "Your code"
