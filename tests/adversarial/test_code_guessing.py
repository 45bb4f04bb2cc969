"""Guessing the claim's 6-digit code (issue 10 § 1): the failure budget is reserved before any code is
compared, in one atomic store step, so parallel guesses never get more than 5 comparisons per attempt
and 15 per claim, never a 503 from contention, and never a free guess — on SQLite, Redis, Redis
Cluster and with several workers.

Black-box: a comparison the server made shows as ``invalid_user_code`` (the only answer that tells a
code was checked and wrong); a contention 503 would be a comparison nobody paid for.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerProcess, StartServer
from tests.helpers import DevHuman

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ANONYMOUS = {"type": "anonymous"}
PARALLEL = 100
EMAIL = "ada@example.com"


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    return {"AUTHMD_POW_MODE": "off", "AUTHMD_ACCESS_LOG": "false", **extra}


def _client(server: ServerProcess) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    return httpx.AsyncClient(base_url=server.origin, timeout=30.0, limits=limits)


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(path, json=body)


async def _confirmed_attempt(client: httpx.AsyncClient, server: ServerProcess, claim_token: str) -> str:
    """Start an attempt bound to EMAIL, let the human authorize it, return the code the page shows."""
    r = await _post(
        client, "/agent/identity/claim", {"type": "service_auth", "claim_token": claim_token, "login_hint": EMAIL}
    )
    assert r.status_code == 200, r.text
    human = DevHuman(client, server.issuer)
    page = await human.open_link(r.json()["attempt"]["verification_uri"], EMAIL)
    assert page.status == 200, page.text
    shown = await human.authorize(page)
    assert shown.status == 200, shown.text
    return shown.code


def _wrong_codes(right: str, count: int) -> list[str]:
    codes: set[str] = set()
    while len(codes) < count:
        guess = f"{secrets.randbelow(10**6):06d}"
        if guess != right:
            codes.add(guess)
    return sorted(codes)


async def _guess(client: httpx.AsyncClient, claim_token: str, codes: list[str]) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(
                _post(client, "/agent/identity/claim/complete", {"claim_token": claim_token, "user_code": c})
                for c in codes
            )
        )
    )


def _outcomes(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter((r.status_code, r.json().get("error", "")) for r in responses)


async def _attack(server: ServerProcess) -> None:
    async with _client(server) as client:
        r = await _post(client, "/agent/identity", ANONYMOUS)
        assert r.status_code == 200, r.text
        claim_token = r.json()["claim"]["token"]

        # Attempt 1: 100 wrong codes at once. At most 5 are compared; none is answered 503.
        code = await _confirmed_attempt(client, server, claim_token)
        outcomes = _outcomes(await _guess(client, claim_token, _wrong_codes(code, PARALLEL)))
        assert not [o for o in outcomes if o[0] >= 500], outcomes
        assert outcomes[(401, "invalid_user_code")] == 5, outcomes
        # The attempt ended with its budget: the right code is no longer accepted.
        r = await _post(client, "/agent/identity/claim/complete", {"claim_token": claim_token, "user_code": code})
        assert r.status_code != 200, r.text

        # Attempts 2 and 3: the same flood; each gets its own 5, and the claim its 15 in all.
        for _ in range(2):
            code = await _confirmed_attempt(client, server, claim_token)
            outcomes = _outcomes(await _guess(client, claim_token, _wrong_codes(code, PARALLEL)))
            assert not [o for o in outcomes if o[0] >= 500], outcomes
            assert outcomes[(401, "invalid_user_code")] == 5, outcomes

        # 15 wrong codes over the claim's life: it is locked for good, and says so (no Retry-After).
        r = await _post(
            client, "/agent/identity/claim", {"type": "service_auth", "claim_token": claim_token, "login_hint": EMAIL}
        )
        assert r.status_code == 410, r.text
        assert "retry-after" not in r.headers
        assert r.json()["error"] == "claim_expired"
        assert "wrong codes" in r.json()["error_description"]
        r = await _post(client, "/agent/identity/claim/complete", {"claim_token": claim_token, "user_code": code})
        assert r.status_code == 410, r.text
        assert "retry-after" not in r.headers


async def test_parallel_guesses_are_bounded(start_server: StartServer, store_env: dict[str, str]) -> None:
    await _attack(start_server(_env(store_env)))


async def test_parallel_guesses_are_bounded_with_two_workers(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    await _attack(start_server(_env({**store_env, "AUTHMD_WORKERS": "2"})))


async def test_parallel_guesses_are_bounded_on_redis_cluster(
    start_server: StartServer, cluster_env: dict[str, str]
) -> None:
    await _attack(start_server(_env({**cluster_env, "AUTHMD_WORKERS": "2"})))
