"""Introspection client authentication under attack (issue 10 § 10): the slow secret check (scrypt,
tens of milliseconds) is throttled per client id and per source, and the throttle is reserved *before*
the check, so a flood of wrong secrets cannot burn the server's CPU; a client that already proved its
secret to this worker is not locked out by someone else's flood."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections import Counter
from pathlib import Path

import httpx
import pytest

from app.keys import hash_secret
from tests.e2e.conftest import ServerProcess, StartServer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SECRET = "s3cret-for-the-api-gateway-" + "x" * 16
FLOOD = 60


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "authmd.toml"
    path.write_text(f'[[introspection_clients]]\nclient_id = "api-gw"\nclient_secret = "{hash_secret(SECRET)}"\n')
    return path


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def _introspect(client: httpx.AsyncClient, client_id: str, secret: str, source: str) -> httpx.Response:
    headers = {**_basic(client_id, secret), "X-Forwarded-For": source}
    return await client.post("/oauth2/introspect", data={"token": "x"}, headers=headers)


def _start(start_server: StartServer, tmp_path: Path, store_env: dict[str, str]) -> ServerProcess:
    return start_server(
        {
            "AUTHMD_CONFIG": str(_config(tmp_path)),
            "AUTHMD_TRUSTED_PROXIES": "127.0.0.1",
            "AUTHMD_INTROSPECTION_CHECKS_PER_CLIENT": "5",
            "AUTHMD_INTROSPECTION_CHECKS_PER_SOURCE": "8",
            **store_env,
        }
    )


def _outcomes(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter((r.status_code, r.json().get("error", "")) for r in responses)


async def test_wrong_secrets_are_throttled_per_client_before_the_slow_check(
    start_server: StartServer, tmp_path: Path, store_env: dict[str, str]
) -> None:
    server = _start(start_server, tmp_path, store_env)
    async with httpx.AsyncClient(base_url=server.origin, timeout=60.0) as client:
        # The gateway proves its secret once (remembered by this worker).
        assert (await _introspect(client, "api-gw", SECRET, "10.0.0.1")).json() == {"active": False}
        # A flood of wrong secrets for its id, from many sources: 5 are checked, the rest refused unchecked.
        flood = await asyncio.gather(
            *(_introspect(client, "api-gw", secrets.token_hex(8), f"10.1.0.{n}") for n in range(FLOOD))
        )
        outcomes = _outcomes(flood)
        assert outcomes == {(401, "invalid_client"): 4, (429, "rate_limit_exceeded"): FLOOD - 4}, outcomes
        assert all(int(r.headers["retry-after"]) > 0 for r in flood if r.status_code == 429)
        assert all(r.headers["www-authenticate"].startswith("Basic") for r in flood if r.status_code == 401)
        # The gateway itself keeps working.
        assert (await _introspect(client, "api-gw", SECRET, "10.0.0.1")).json() == {"active": False}


async def test_unknown_clients_are_throttled_per_source(
    start_server: StartServer, tmp_path: Path, store_env: dict[str, str]
) -> None:
    server = _start(start_server, tmp_path, store_env)
    async with httpx.AsyncClient(base_url=server.origin, timeout=60.0) as client:
        flood = await asyncio.gather(
            *(_introspect(client, f"client-{n}", "wrong-secret", "10.2.0.1") for n in range(FLOOD))
        )
        outcomes = _outcomes(flood)
        assert outcomes[(401, "invalid_client")] <= 8, outcomes
        assert outcomes[(401, "invalid_client")] + outcomes[(429, "rate_limit_exceeded")] == FLOOD, outcomes
        # Another source still reaches the check (and the real client still authenticates there).
        assert (await _introspect(client, "api-gw", SECRET, "10.2.0.2")).json() == {"active": False}
