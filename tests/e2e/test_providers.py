"""ID-JAGs and security events across two real authmd processes sharing one Redis: a jti is used once
across instances, and a provider's revocation pushed to one instance holds on the other."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.common import JWT_BEARER
from tests.e2e.conftest import HOST, ServerProcess, StartServer, free_port
from tests.provider import SET_CONTENT_TYPE, TestProvider
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.e2e

URN = "urn:ietf:params:oauth:token-type:id-jag"


def _two_instances(
    start_server: StartServer, redis: RedisServer, provider: TestProvider, tmp_path: Path
) -> tuple[str, ServerProcess, ServerProcess]:
    issuer = f"http://{HOST}:{free_port()}"  # what a load balancer in front of both would be
    config = tmp_path / "authmd.toml"
    config.write_text(
        f'issuer = "{issuer}"\n'
        f'store_url = "{redis.url}"\n'
        "[[providers]]\n"
        f'issuer = "{provider.issuer}"\n'
        'client_ids = ["agent-cli"]\n'
        'scopes = ["notes:read", "notes:write"]\n'
    )
    # One data dir (keys) for both: the environment variable beats the TOML file, as documented.
    env = {"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off", "AUTHMD_DATA_DIR": str(tmp_path / "shared-data")}
    return issuer, start_server(env), start_server(env)


def _register(origin: str, assertion: str) -> httpx.Response:
    body = {"type": "identity_assertion", "assertion_type": URN, "assertion": assertion}
    return httpx.post(f"{origin}/agent/identity", json=body, timeout=10)


def test_a_jti_is_used_once_across_instances(
    start_server: StartServer, redis_server: RedisServer, provider: TestProvider, tmp_path: Path
) -> None:
    issuer, a, b = _two_instances(start_server, redis_server, provider, tmp_path)
    jag = provider.mint_id_jag("e2e-1", aud=issuer, email="e2e1@example.com")
    assert _register(a.origin, jag).status_code == 200
    r = _register(b.origin, jag)
    assert (r.status_code, r.json()["error"]) == (400, "replay_detected")
    # Twenty concurrent presentations of one fresh ID-JAG over both instances: exactly one wins.
    racer = provider.mint_id_jag("e2e-1", aud=issuer, email="e2e1@example.com")
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda i: _register((a, b)[i % 2].origin, racer), range(20)))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [400] * 19
    assert {r.json()["error"] for r in results if r.status_code == 400} == {"replay_detected"}


def test_a_revocation_pushed_to_one_instance_holds_on_the_other(
    start_server: StartServer, redis_server: RedisServer, provider: TestProvider, tmp_path: Path
) -> None:
    issuer, a, b = _two_instances(start_server, redis_server, provider, tmp_path)
    reg = _register(a.origin, provider.mint_id_jag("e2e-2", aud=issuer, email="e2e2@example.com")).json()
    form = {"grant_type": JWT_BEARER, "assertion": reg["identity"]["assertion"]}
    token = httpx.post(f"{b.origin}/oauth2/token", data=form).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{b.origin}/api/notes", headers=bearer).status_code == 200
    set_token = provider.revocation_set("e2e-2", aud=issuer, iat=int(time.time()) + 1)
    r = httpx.post(f"{a.origin}/agent/events", content=set_token, headers={"content-type": SET_CONTENT_TYPE})
    assert r.status_code == 202, r.text
    for origin in (a.origin, b.origin):
        assert httpx.get(f"{origin}/api/notes", headers=bearer).status_code == 401
        assert httpx.post(f"{origin}/oauth2/token", data=form).json()["error"] == "invalid_grant"
