"""A burst of concurrent requests on one worker waits for a store connection instead of failing
(issue 10 § 4). redis-py's default pool refused the 101st connection at once: when Redis stalled for a
moment (an fsync, a slow command) and requests piled up, everything past 100 in flight got a 503 while
Redis was healthy. Here Redis is paused (``CLIENT PAUSE``, as a stall) while a burst arrives: every
request must wait and succeed. A 503 is for a store that is really unavailable (tests/e2e/test_faults.py).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import ServerProcess, StartServer
from tests.redis_servers import RedisCluster, RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

BURST = 200
# The burst stands for many clients; from one test client it needs more than one client's connection cap.
ENV = {"AUTHMD_POW_MODE": "off", "AUTHMD_ACCESS_LOG": "false", "AUTHMD_HTTP_MAX_CONNECTIONS_PER_CLIENT": "1000"}
STALL_MS = "1500"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


async def _burst_during_a_stall(server: ServerProcess, stall: Callable[[], None]) -> None:
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(base_url=server.origin, timeout=60.0, limits=limits) as client:
        r = await client.post("/agent/identity", json={"type": "anonymous"})
        assert r.status_code == 200, r.text
        form = {"grant_type": JWT_BEARER, "assertion": r.json()["identity"]["assertion"]}
        auth = {"Authorization": f"Bearer {(await client.post('/oauth2/token', data=form)).json()['access_token']}"}
        # Open the connections first, so the burst arrives at once.
        warm = await asyncio.gather(*(client.get("/healthz") for _ in range(BURST)))
        assert {w.status_code for w in warm} == {200}
        stall()
        responses = await asyncio.gather(*(client.get("/api/notes", headers=auth) for _ in range(BURST)))
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: BURST}, (statuses, [r.text for r in responses if r.status_code != 200][:2])


async def test_a_burst_during_a_redis_stall_is_served(start_server: StartServer, shared_redis: RedisServer) -> None:
    url = f"{shared_redis.url}?prefix=pool{secrets.token_hex(4)}:"
    server = start_server({**ENV, "AUTHMD_STORE_URL": url})
    await _burst_during_a_stall(server, lambda: shared_redis.command("CLIENT", "PAUSE", STALL_MS, "ALL"))


async def test_a_burst_during_a_cluster_stall_is_served(start_server: StartServer, redis_cluster: RedisCluster) -> None:
    url = f"{redis_cluster.url}?prefix=pool{secrets.token_hex(4)}:"
    server = start_server({**ENV, "AUTHMD_STORE_URL": url})

    def stall() -> None:
        for node in redis_cluster.servers:
            node.command("CLIENT", "PAUSE", STALL_MS, "ALL")

    await _burst_during_a_stall(server, stall)


async def test_a_stall_longer_than_the_pool_timeout_is_a_prompt_503(
    start_server: StartServer, shared_redis: RedisServer
) -> None:
    """The failure path: with 2 connections and a 0.3 s wait, a stall past both answers 503 (with
    Retry-After) for the requests that found no connection, and the service recovers after it."""
    url = f"{shared_redis.url}?prefix=pool{secrets.token_hex(4)}:&max_connections=2&pool_timeout=0.3"
    server = start_server({**ENV, "AUTHMD_STORE_URL": url})
    async with httpx.AsyncClient(base_url=server.origin, timeout=60.0) as client:
        shared_redis.command("CLIENT", "PAUSE", "5000", "ALL")
        try:
            responses = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
        finally:
            shared_redis.command("CLIENT", "UNPAUSE")
        unavailable = [r for r in responses if r.status_code == 503]
        assert len(unavailable) >= 18, [r.status_code for r in responses]  # at most 2 held a connection
        assert all(r.headers.get("retry-after") for r in unavailable)
        r = await client.post("/agent/identity", json={"type": "anonymous"})
        assert r.status_code == 200, r.text
