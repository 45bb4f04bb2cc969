"""The adversarial battery (issue 10): each test attacks the real server (`authmd serve` as a
subprocess) the way an abuser would, on the embedded store and on Redis, and asserts the limit holds.

Fixtures: ``start_server`` and ``http`` from the e2e harness; ``store_env`` runs a test once per
store (SQLite in the server's own data dir, then a private key prefix on the session's Redis);
``cluster_env`` points a server at the session's 3-node Redis Cluster.
"""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.conftest import http, pytest_runtest_makereport, start_server  # noqa: F401 (fixtures, hook)
from tests.redis_servers import redis_cluster, shared_redis  # noqa: F401 (fixtures)


@pytest.fixture(params=["sqlite", "redis"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    redis = request.getfixturevalue("shared_redis")
    return {"AUTHMD_STORE_URL": f"{redis.url}?prefix=adv{secrets.token_hex(4)}:"}


@pytest.fixture
def cluster_env(request: pytest.FixtureRequest) -> dict[str, str]:
    cluster = request.getfixturevalue("redis_cluster")
    return {"AUTHMD_STORE_URL": f"{cluster.url}?prefix=adv{secrets.token_hex(4)}:"}
