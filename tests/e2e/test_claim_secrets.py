"""Against the real server process: no secret of the claim ceremony (claim token, claim-attempt token,
code, refresh token, session cookie) ever reaches the server's log, even at debug level with the
access log on; and the ceremony survives a restart (sessions and claims live in the store)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.conftest import StartServer
from tests.helpers import Agent, DevHuman

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_no_claim_secret_reaches_the_log_and_a_restart_loses_nothing(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_ACCESS_LOG": "true", "AUTHMD_LOG_LEVEL": "debug"})
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        human = DevHuman(client, server.issuer)
        reg = await agent.register()
        attempt = await agent.start_claim(reg["claim"]["token"], "ada@example.com")
        uri = attempt["attempt"]["verification_uri"]
        page = await human.open_link(uri, "ada@example.com")
        assert page.title == "Authorize this agent?"
        # Sessions and the attempt survive a restart of the only instance.
        server.restart()
        page = await human.follow(f"{server.issuer}/claim")
        assert page.title == "Authorize this agent?", page.text
        code = (await human.authorize(page)).code
        done = await agent.complete_claim(reg["claim"]["token"], code)
        refreshed = await agent.refresh(done["identity"]["refresh_token"]["value"])
    log = server.read_log()
    assert "GET /claim" in log and "POST /claim/confirm" in log  # the access log is on
    attempt_token = re.search(r"cvt_[A-Za-z0-9_.%-]+", uri)
    assert attempt_token is not None
    secrets = {
        "claim token": reg["claim"]["token"].rsplit(".", 1)[1],
        "attempt token": attempt_token.group(0).replace("%2E", ".").rsplit(".", 1)[1],
        "refresh token": done["identity"]["refresh_token"]["value"].rsplit(".", 1)[1],
        "next refresh token": refreshed["identity"]["refresh_token"]["value"].rsplit(".", 1)[1],
        "session": human.cookies.get("authmd_session") or "missing",
        "assertion": done["identity"]["assertion"].rsplit(".", 1)[1],
    }
    for name, value in secrets.items():
        assert value != "missing" and value not in log, f"the {name} is in the server log"
    # The code is six digits: look for it as a number of its own, not inside a longer one (a timestamp).
    assert not re.search(rf"(?<![0-9]){code}(?![0-9])", log), "the code is in the server log"
