"""Against a real `authmd serve` with `log_format = "json"`: every security event of a scripted run
(registrations, the claim's start, confirmation, denial and completion, wrong codes and the lockout,
revocations, a refused ID-JAG with its reason, a rate-limit refusal) is one JSON line of its own, with
the request id its response sent back; no secret the run created appears anywhere in the log, at
debug level with the access log on; and a flood of refusals is counted in full but logged at a bounded
rate."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.observe import REFUSAL_LINES_PER_SECOND
from tests.e2e.conftest import StartServer, wait_until
from tests.helpers import Agent, DevHuman
from tests.provider import TestProvider, provider_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

URN = "urn:ietf:params:oauth:token-type:id-jag"


def _signature(jwt: str) -> str:
    return jwt.rsplit(".", 1)[1]


async def test_each_security_event_is_one_json_line_and_no_secret_is_logged(
    start_server: StartServer, provider: TestProvider, tmp_path: Any
) -> None:
    config = tmp_path / "authmd.toml"
    config.write_text(
        f'[[providers]]\nissuer = "{provider.issuer}"\nclient_ids = ["agent-cli"]\nscopes = ["notes:read"]\n'
    )
    server = start_server(
        {
            "AUTHMD_CONFIG": str(config),
            "AUTHMD_LOG_FORMAT": "json",
            "AUTHMD_LOG_LEVEL": "debug",
            "AUTHMD_ACCESS_LOG": "true",
            "AUTHMD_POW_MODE": "off",
            "AUTHMD_REGISTER_LIMIT_PER_SOURCE": "3",
        }
    )
    secrets: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)

        # A: claimed by Ada, refreshed, then the agent revokes its refresh token.
        ada = DevHuman(client, server.issuer)
        reg_a = await agent.register()
        attempt = await agent.start_claim(reg_a["claim"]["token"], "ada@example.com")
        page = await ada.open_link(attempt["attempt"]["verification_uri"], "ada@example.com")
        code_a = (await ada.authorize(page)).code
        done = await agent.complete_claim(reg_a["claim"]["token"], code_a)
        refreshed = await agent.refresh(done["identity"]["refresh_token"]["value"])
        refresh_token = refreshed["identity"]["refresh_token"]["value"]
        access = await agent.token(refreshed["identity"]["assertion"])
        revoked = await client.post(f"{server.issuer}/oauth2/revoke", data={"token": refresh_token})
        assert revoked.status_code == 200, revoked.text

        # B: Bob says it was not him.
        bob = DevHuman(client, server.issuer)
        reg_b = await agent.register()
        attempt_b = await agent.start_claim(reg_b["claim"]["token"], "bob@example.com")
        page_b = await bob.open_link(attempt_b["attempt"]["verification_uri"], "bob@example.com")
        denied = await bob.deny(page_b)
        assert denied.status == 200, denied.text

        # C: confirmed by Cy, then five wrong codes end every attempt (the lockout of this window).
        cy = DevHuman(client, server.issuer)
        reg_c = await agent.register()
        attempt_c = await agent.start_claim(reg_c["claim"]["token"], "cy@example.com")
        page_c = await cy.open_link(attempt_c["attempt"]["verification_uri"], "cy@example.com")
        code_c = (await cy.authorize(page_c)).code
        wrong = "000000" if code_c != "000000" else "111111"
        for _ in range(5):
            await agent.complete_claim(reg_c["claim"]["token"], wrong, expect=401)

        # The fourth anonymous registration from this source is over the limit of three.
        refused = await client.post(f"{server.issuer}/agent/identity", json={"type": "anonymous"})
        assert refused.status_code == 429, refused.text

        # An ID-JAG for another audience is refused, and its provider is named (it is on the trust list).
        jag_bad = provider.mint_id_jag("subject-1", aud="https://elsewhere.example", email="dee@example.com")
        body = {"type": "identity_assertion", "assertion_type": URN, "assertion": jag_bad}
        bad = await client.post(f"{server.issuer}/agent/identity", json=body)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_audience", bad.text
        jag = provider.mint_id_jag("subject-2", aud=server.issuer, email="eve@example.com")
        body = {"type": "identity_assertion", "assertion_type": URN, "assertion": jag}
        good = await client.post(f"{server.issuer}/agent/identity", json=body)
        assert good.status_code == 200, good.text

    secrets.update(
        {
            "claim token A": _signature(reg_a["claim"]["token"]),
            "claim token B": _signature(reg_b["claim"]["token"]),
            "claim token C": _signature(reg_c["claim"]["token"]),
            "assertion A": _signature(reg_a["identity"]["assertion"]),
            "assertion after the claim": _signature(done["identity"]["assertion"]),
            "refresh token": _signature(done["identity"]["refresh_token"]["value"]),
            "rotated refresh token": _signature(refresh_token),
            "access token": _signature(access["access_token"]),
            "ID-JAG": _signature(jag),
            "refused ID-JAG": _signature(jag_bad),
            "identity assertion from the ID-JAG": _signature(good.json()["identity"]["assertion"]),
        }
    )
    for who in (ada, bob, cy):
        secrets[f"session {who}"] = who.cookies.get("authmd_session") or "missing"
    for n, uri in enumerate((attempt, attempt_b, attempt_c)):
        token = re.search(r"cvt_[A-Za-z0-9_.%-]+", uri["attempt"]["verification_uri"])
        assert token is not None
        secrets[f"attempt token {n}"] = token.group(0).replace("%2E", ".").rsplit(".", 1)[1]

    def security_lines() -> list[dict[str, Any]] | None:
        lines = [json.loads(line) for line in server.read_log().splitlines() if not line.startswith("----- start")]
        ours = [line for line in lines if line["logger"] == "authmd.security"]
        return ours if any(line.get("event") == "id_jag.refused" for line in ours) else None

    lines = wait_until(security_lines, 10, "the security lines")  # every line parsed as JSON on the way
    by_event: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_event.setdefault(line["event"], []).append(line)
        assert line["request_id"] != "-", line  # each was written while a request was handled

    created = by_event["agent_registration.created"]
    assert {line["account_id"] for line in created} >= {reg_a["account"]["id"], reg_b["account"]["id"]}
    assert {line["method"] for line in created} == {"anonymous", "identity_assertion"}
    assert len(by_event["agent_registration.claim_attempt.created"]) == 3
    assert len(by_event["agent_registration.claim.confirmed"]) == 2  # Ada and Cy
    assert [line["account_id"] for line in by_event["agent_registration.claim.denied"]] == [reg_b["account"]["id"]]
    assert [line["account_id"] for line in by_event["agent_registration.claim.completed"]] == [reg_a["account"]["id"]]
    assert len(by_event["user_code.wrong"]) == 5
    [lockout] = by_event["lockout"]
    assert lockout["account_id"] == reg_c["account"]["id"] and lockout["level"] == "warning"
    assert {line["reason"] for line in by_event["agent_registration.claim_attempt.expired"]} == {"code_budget"}
    revocations = {(line["by"], line.get("reason")) for line in by_event["agent_registration.revoked"]}
    assert revocations == {("agent", "token_revoked"), ("human", "claim_denied")}
    [idjag] = by_event["id_jag.refused"]
    assert (idjag["provider"], idjag["reason"]) == (provider.issuer, "invalid_audience")
    assert idjag["request_id"] == bad.headers["x-request-id"]
    [limit] = by_event["refused"]
    assert (limit["limit"], limit["code"]) == ("register_per_source", "rate_limit_exceeded")
    assert limit["request_id"] == refused.headers["x-request-id"] and limit["source"] == "127.0.0.1"

    log = server.read_log()
    for name, value in secrets.items():
        assert value != "missing" and value not in log, f"the {name} is in the server log"
    for code in (code_a, code_c):  # six digits: as a number of its own, not inside a timestamp
        assert not re.search(rf"(?<![0-9]){code}(?![0-9])", log), "a user code is in the server log"


async def test_a_flood_of_refusals_is_counted_in_full_and_logged_at_a_bounded_rate(start_server: StartServer) -> None:
    """200 concurrent registrations over the per-source limit: every one is refused and counted, but the
    log gets at most REFUSAL_LINES_PER_SECOND lines per second of the process (a second of the wall clock
    overlaps two of the throttle's), and what it held back is said."""
    server = start_server(
        {
            "AUTHMD_LOG_FORMAT": "json",
            "AUTHMD_POW_MODE": "off",
            "AUTHMD_REGISTER_LIMIT_PER_SOURCE": "1",
            "AUTHMD_ACCESS_LOG": "true",
        }
    )
    url = f"{server.issuer}/agent/identity"
    async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=50)) as client:
        assert (await client.post(url, json={"type": "anonymous"})).status_code == 200
        flood = await asyncio.gather(*(client.post(url, json={"type": "anonymous"}) for _ in range(200)))
        assert [r.status_code for r in flood] == [429] * 200
        scraped = (await client.get(f"{server.issuer}/metrics")).text  # on by default in dev mode
    refusals = {
        sample.labels["limit"]: sample.value
        for family in text_string_to_metric_families(scraped)
        if family.name == "authmd_refusals"
        for sample in family.samples
        if sample.name == "authmd_refusals_total"
    }
    assert refusals == {"register_per_source": 200}

    def refused_lines() -> list[dict[str, Any]] | None:
        lines = [json.loads(line) for line in server.read_log().splitlines() if not line.startswith("----- start")]
        access = [line for line in lines if line["logger"] == "authmd.access" and " 429" in line["message"]]
        return [line for line in lines if line.get("event") == "refused"] if len(access) == 200 else None

    lines = wait_until(refused_lines, 10, "the access lines of the flood")
    per_second = Counter(line["time"][:19] for line in lines)
    assert max(per_second.values()) <= 2 * REFUSAL_LINES_PER_SECOND, per_second
    assert 0 < len(lines) < 200
    assert len(lines) + sum(line["held_back"] for line in lines) <= 200
