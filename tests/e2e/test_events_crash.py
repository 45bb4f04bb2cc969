"""A real `authmd serve` killed with SIGKILL under load loses no committed event (spec/events.md §
Guarantees): after the kill, a fresh reader of the same store finds the `agent_registration.created`
event of every registration the instance acknowledged, in an outbox listed as pending delivery."""

# ruff: noqa: F811
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import jwt
import pytest

from app import events as ev
from app.store import open_store
from tests.e2e.common import shared_env
from tests.e2e.conftest import StartServer, wait_until
from tests.e2e.test_faults import RegistrationLoad
from tests.redis_servers import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.e2e

LOAD = {"AUTHMD_POW_MODE": "off", "AUTHMD_REGISTER_LIMIT_PER_SOURCE": "100000"}


async def _check(store_url: str, assertions: list[str]) -> None:
    reader = open_store(store_url)
    await reader.open()
    try:
        pending = set(await reader.outboxes_with_pending(100_000))
        for assertion in assertions:
            claims = jwt.decode(assertion, options={"verify_signature": False})
            account_id, registration_id = claims["sub"], claims["reg"]
            created = [e for e in await reader.read_outbox(account_id) if isinstance(e, ev.RegistrationCreated)]
            assert [e.registration_id for e in created] == [registration_id], account_id
            assert account_id in pending
    finally:
        await reader.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_kill_9_of_a_serving_instance_loses_no_committed_event(
    backend: str, start_server: StartServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = shared_env(redis_server, tmp_path, LOAD) if backend == "redis" else dict(LOAD)
    server = start_server(env)
    assert server.proc is not None
    with RegistrationLoad(server) as load:
        wait_until(lambda: load.successes() >= 20, 30, "20 registrations acknowledged")
        os.kill(server.proc.pid, signal.SIGKILL)  # right after those commits, in the middle of others
        assert server.proc.wait(timeout=10) == -signal.SIGKILL
    assert load.others == [], [(r.status_code, r.text) for r in load.others]
    store_url = env["AUTHMD_STORE_URL"] if backend == "redis" else f"sqlite:///{server.db_path}"
    asyncio.run(_check(store_url, load.assertions))
