"""What the e2e tests share: wire constants, small assertions, and the environment of instances that
stand behind one load balancer (one Redis, one data dir with the keys, one issuer)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import HOST, free_port
from tests.redis_servers import RedisServer

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
IDENTITY = "/agent/identity"
CHALLENGE = "/agent/identity/challenge"
TOKEN = "/oauth2/token"
REVOKE = "/oauth2/revoke"
NOTES = "/api/notes"


def shared_env(redis: RedisServer, tmp_path: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Instances on one Redis, one data dir (keys and secret) and one issuer (a load balancer's URL)."""
    return {
        "AUTHMD_STORE_URL": redis.url,
        "AUTHMD_DATA_DIR": str(tmp_path / "shared-data"),
        "AUTHMD_ISSUER": f"http://{HOST}:{free_port()}",
        **(env or {}),
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    return body
