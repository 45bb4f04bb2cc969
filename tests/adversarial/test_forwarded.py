"""Forwarded addresses (issue 10 § 7): behind a trusted proxy the client is the right-most untrusted hop
across *all* ``X-Forwarded-For`` header lines, never a value the client could put in front. Observed
through the per-source registration limit (1 per window here): two requests the proxy attributes to the
same client must share it, whatever the client prepended."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import StartServer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ENV = {"AUTHMD_POW_MODE": "off", "AUTHMD_REGISTER_LIMIT_PER_SOURCE": "1", "AUTHMD_ACCESS_LOG": "false"}


async def _register(client: httpx.AsyncClient, forwarded: list[str]) -> int:
    headers = [("X-Forwarded-For", line) for line in forwarded]
    r = await client.post("/agent/identity", json={"type": "anonymous"}, headers=headers)
    return r.status_code


async def test_the_client_is_the_right_most_untrusted_hop_across_all_lines(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({**ENV, "AUTHMD_TRUSTED_PROXIES": "127.0.0.1,10.9.0.0/16", **store_env})
    async with httpx.AsyncClient(base_url=server.origin, timeout=10.0) as client:
        # The proxy appended the client's address as a second line; the first is the client's own words.
        assert await _register(client, ["198.51.100.7", "203.0.113.9"]) == 200
        assert await _register(client, ["198.51.100.8", "203.0.113.9"]) == 429
        assert await _register(client, ["198.51.100.9, 203.0.113.9"]) == 429
        # Trusted hops are skipped, across lines too.
        assert await _register(client, ["192.0.2.1", "203.0.113.9", "10.9.0.5"]) == 429
        assert await _register(client, ["192.0.2.1", "203.0.113.10, 10.9.0.5"]) == 200


async def test_without_trusted_proxies_forwarded_headers_are_ignored(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    server = start_server({**ENV, **store_env})
    async with httpx.AsyncClient(base_url=server.origin, timeout=10.0) as client:
        assert await _register(client, ["198.51.100.7"]) == 200
        assert await _register(client, ["198.51.100.8"]) == 429  # both are 127.0.0.1
