"""Registration admission under abuse (issue 10 §§ 5, 6): requests without the required proof of work
(missing, bad or replayed) don't spend the per-source and global allowances that honest, proven
registrations need, refusals are limited on their own, and a challenge pays only for the price it was
minted at: once a source's required difficulty has risen, an older, cheaper challenge is refused.

Sources are told apart by ``X-Forwarded-For`` from a trusted proxy (the test client on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from app.protocol import solve
from tests.e2e.conftest import ServerProcess, StartServer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

BASE = {
    "AUTHMD_TRUSTED_PROXIES": "127.0.0.1",
    "AUTHMD_POW_MODE": "adaptive",
    "AUTHMD_POW_DIFFICULTY": "8",
    "AUTHMD_POW_MAX_DIFFICULTY": "14",
    "AUTHMD_POW_FREE_PER_SOURCE": "2",
    "AUTHMD_ACCESS_LOG": "false",
}


def _client(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.origin, timeout=30.0, limits=httpx.Limits(max_connections=50))


async def _register(client: httpx.AsyncClient, source: str, proof: dict[str, str] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"type": "anonymous"}
    if proof is not None:
        body["proof_of_work"] = proof
    return await client.post("/agent/identity", json=body, headers={"X-Forwarded-For": source})


def _solved(challenge: dict[str, Any]) -> dict[str, str]:
    return {"challenge": challenge["challenge"], "nonce": solve(challenge["challenge"], challenge["difficulty"])}


async def test_unproven_requests_do_not_spend_the_shared_budget(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({**BASE, "AUTHMD_REGISTER_LIMIT_GLOBAL": "20", **store_env})
    async with _client(server) as client:
        for _ in range(2):  # the abuser's free allowance
            assert (await _register(client, "10.0.0.1")).status_code == 200
        refused = await asyncio.gather(*(_register(client, "10.0.0.1") for _ in range(50)))
        outcomes = Counter((r.status_code, r.json().get("error")) for r in refused)
        assert outcomes == {(400, "proof_of_work_required"): 50}, outcomes
        # Ten fresh sources are admitted: only the 12 admitted registrations count towards the 20.
        for n in range(10):
            r = await _register(client, f"10.0.1.{n}")
            assert r.status_code == 200, r.text


async def test_replayed_proofs_do_not_spend_the_shared_budget(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({**BASE, "AUTHMD_REGISTER_LIMIT_GLOBAL": "5", **store_env})
    async with _client(server) as client:
        r = await client.post("/agent/identity/challenge", headers={"X-Forwarded-For": "10.0.0.1"})
        proof = _solved(r.json())
        replays = await asyncio.gather(*(_register(client, "10.0.0.1", proof) for _ in range(20)))
        outcomes = Counter((r.status_code, r.json().get("error")) for r in replays)
        assert outcomes == {(200, None): 1, (400, "invalid_proof_of_work"): 19}, outcomes
        for n in range(4):  # 1 + 4 = the global limit of 5
            r = await _register(client, f"10.0.1.{n}")
            assert r.status_code == 200, r.text
        r = await _register(client, "10.0.2.1")
        assert r.status_code == 429, r.text


async def test_refusals_are_limited_on_their_own(start_server: StartServer, store_env: dict[str, str]) -> None:
    server = start_server({**BASE, "AUTHMD_UNPROVEN_LIMIT_PER_SOURCE": "10", **store_env})
    async with _client(server) as client:
        for _ in range(2):
            assert (await _register(client, "10.0.0.1")).status_code == 200
        for _ in range(10):
            assert (await _register(client, "10.0.0.1")).json()["error"] == "proof_of_work_required"
        r = await _register(client, "10.0.0.1")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0, r.text
        # Even a good proof waits out the refusal limit: the source spent its allowance on refusals.
        r = await client.post("/agent/identity/challenge", headers={"X-Forwarded-For": "10.0.0.1"})
        assert (await _register(client, "10.0.0.1", _solved(r.json()))).status_code == 429
        # Other sources are not affected.
        assert (await _register(client, "10.0.0.2")).status_code == 200


async def test_a_challenge_pays_only_the_price_it_was_minted_at(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({**BASE, **store_env})
    async with _client(server) as client:
        # Stockpiled while registering was cheap: the base difficulty.
        r = await client.post("/agent/identity/challenge", headers={"X-Forwarded-For": "10.0.0.1"})
        cheap = r.json()
        assert cheap["difficulty"] == 8
        # Four registrations, the last two paying the price the server asks (9 bits).
        for _ in range(2):
            assert (await _register(client, "10.0.0.1")).status_code == 200
        for _ in range(2):
            asked = (await _register(client, "10.0.0.1")).json()
            assert asked["error"] == "proof_of_work_required" and asked["challenge"]["difficulty"] == 9
            r = await _register(client, "10.0.0.1", _solved(asked["challenge"]))
            assert r.status_code == 200, r.text
        # The fifth costs 10 bits now: the 8-bit challenge is refused, with a fresh one at the price.
        r = await _register(client, "10.0.0.1", _solved(cheap))
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["error"] == "invalid_proof_of_work" and body["challenge"]["difficulty"] == 10
        r = await _register(client, "10.0.0.1", _solved(body["challenge"]))
        assert r.status_code == 200, r.text


async def test_parallel_refusals_do_not_overrun_their_limit(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    """The refusal limit holds when the refused requests arrive at once: a refusal's place is taken
    before any work, so at most the limit are refused with a challenge and the rest get 429."""
    server = start_server({**BASE, "AUTHMD_UNPROVEN_LIMIT_PER_SOURCE": "10", **store_env})
    async with _client(server) as client:
        for _ in range(2):
            assert (await _register(client, "10.0.0.1")).status_code == 200
        flood = await asyncio.gather(*(_register(client, "10.0.0.1") for _ in range(50)))
        outcomes = Counter((r.status_code, r.json()["error"]) for r in flood)
        assert outcomes == {(400, "proof_of_work_required"): 10, (429, "rate_limit_exceeded"): 40}, outcomes
        # An admitted registration does not use up the refusal allowance of its source.
        for _ in range(12):
            proof = _solved(
                (await client.post("/agent/identity/challenge", headers={"X-Forwarded-For": "10.0.0.3"})).json()
            )
            assert (await _register(client, "10.0.0.3", proof)).status_code == 200
