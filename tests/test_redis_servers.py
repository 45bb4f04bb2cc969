"""The real-Redis test infrastructure (tests/redis_servers.py) works: servers start on private ports with
AOF + appendfsync always + noeviction, survive kill -9 with their data, never leak, and the cluster is a
real 3-master cluster that redis-py can use (including multi-key Lua on a shared hash tag)."""

# The fixtures are imported into this module (tests/conftest.py is not ours to edit); a test parameter
# named like an imported fixture is what ruff calls a redefinition (F811). In a conftest, F401 suffices.
# ruff: noqa: F811

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
import redis
import redis.asyncio
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient
from redis.exceptions import ClusterCrossSlotError

from tests import redis_servers
from tests.redis_servers import (
    INSTALL_HINT,
    RedisCluster,
    RedisServer,
    RedisServerError,
    redis_cluster,  # noqa: F401
    redis_pids,
    redis_server,  # noqa: F401
    require_redis,
    shared_redis,  # noqa: F401
)


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def unique(prefix: str) -> str:
    return f"{prefix}:{uuid.uuid4().hex}"


# --- single server --------------------------------------------------------------------------------


def test_server_set_get_on_private_port(redis_server: RedisServer, tmp_path: Path) -> None:
    assert redis_server.port != 6379
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.dir.is_relative_to(tmp_path)
    assert redis_server.is_running
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.set("k", "v") is True
        assert client.get("k") == b"v"
        assert client.dbsize() == 1  # fresh server: nothing but our key
        assert client.info("server")["process_id"] == redis_server.pid


def test_server_config_is_durable_and_noeviction(shared_redis: RedisServer) -> None:
    with redis.Redis.from_url(shared_redis.url, decode_responses=True) as client:
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("dir") == {"dir": str(shared_redis.dir.resolve())}


def test_kill_then_restart_keeps_acknowledged_writes(redis_server: RedisServer) -> None:
    port, pid = redis_server.port, redis_server.pid
    with redis.Redis.from_url(redis_server.url) as client:
        client.set("before-crash", "kept")
        for _ in range(50):
            client.incr("counter")
    redis_server.kill()
    assert not redis_server.is_running
    assert redis_server.proc is not None and redis_server.proc.returncode == -9
    assert refuses(port)
    assert redis_pids(port) == []

    redis_server.restart()
    assert redis_server.port == port  # same port and dir: the AOF is reloaded
    assert redis_server.pid != pid
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.get("before-crash") == b"kept"
        assert client.get("counter") == b"50"
    assert (redis_server.dir / "appendonlydir").is_dir()


def test_stop_and_restart_keep_data_and_stop_is_idempotent(redis_server: RedisServer) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.set("k", "v")
    redis_server.restart()  # running: stops gracefully first
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.get("k") == b"v"
    redis_server.stop()
    redis_server.stop()
    assert not redis_server.is_running
    assert redis_server.proc is not None and redis_server.proc.returncode == 0
    assert refuses(redis_server.port)


def test_extra_args_override_defaults_and_context_manager_cleans_up(tmp_path: Path) -> None:
    require_redis()
    with RedisServer(tmp_path / "lru", extra_args=["--maxmemory-policy", "allkeys-lru"]) as server:
        port = server.port
        assert redis_pids(port) == [server.pid]
        with redis.Redis.from_url(server.url, decode_responses=True) as client:
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
    assert not server.is_running
    assert redis_pids(port) == []


def test_context_manager_stops_server_when_the_body_raises() -> None:
    require_redis()
    with pytest.raises(ZeroDivisionError), RedisServer() as server:  # owns a temp dir
        port, directory = server.port, server.dir
        assert server.command("PING") == "PONG"
        _ = 1 / 0
    assert not server.is_running
    assert redis_pids(port) == []
    assert not directory.exists()


def test_fixed_port_in_use_fails_fast(tmp_path: Path) -> None:
    require_redis()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = RedisServer(tmp_path / "busy", port=port)
        with pytest.raises(RedisServerError, match=f"port {port} is in use"):
            server.start()
    assert not server.is_running


@pytest.mark.anyio
async def test_asyncio_client_against_shared_server(shared_redis: RedisServer) -> None:
    key = unique("infra-async")
    async with redis.asyncio.Redis.from_url(shared_redis.url) as client:
        assert await client.set(key, "1", ex=60) is True
        assert await client.incr(key) == 2
        assert 0 < await client.ttl(key) <= 60


# --- cluster --------------------------------------------------------------------------------------


def cluster_client(cluster: RedisCluster) -> ClusterClient:
    nodes = [ClusterNode(host, port) for host, port in cluster.nodes]  # type: ignore[no-untyped-call]
    return ClusterClient(startup_nodes=nodes)


def test_cluster_url_nodes_and_state(redis_cluster: RedisCluster) -> None:
    ports = [port for _, port in redis_cluster.nodes]
    assert len(set(ports)) == 3
    assert {host for host, _ in redis_cluster.nodes} == {"127.0.0.1"}
    assert redis_cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    assert redis_cluster.is_ready()
    for server in redis_cluster.servers:
        assert server.command("CONFIG", "GET", "appendfsync") == ["appendfsync", "always"]
        assert server.command("CONFIG", "GET", "cluster-enabled") == ["cluster-enabled", "yes"]


def test_cluster_keys_land_on_all_three_masters(redis_cluster: RedisCluster) -> None:
    prefix = unique("infra-cluster")
    keys = [f"{prefix}:{i}" for i in range(60)]
    with cluster_client(redis_cluster) as client:
        for i, key in enumerate(keys):
            assert client.set(key, str(i)) is True
        assert [client.get(key) for key in keys] == [str(i).encode() for i in range(len(keys))]
    per_node: dict[int, int] = {}
    for host, port in redis_cluster.nodes:  # ask each master directly, not through the cluster client
        with redis.Redis(host=host, port=port) as node:
            per_node[port] = sum(1 for _ in node.scan_iter(match=f"{prefix}:*", count=1000))
    assert sum(per_node.values()) == len(keys)
    assert all(count > 0 for count in per_node.values()), per_node


def test_cluster_multi_key_lua_needs_a_shared_hash_tag(redis_cluster: RedisCluster) -> None:
    tag = "{" + unique("infra-lua") + "}"
    script = (
        "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[2]);"
        " return redis.call('MGET', KEYS[1], KEYS[2])"
    )
    with cluster_client(redis_cluster) as client:
        assert client.eval(script, 2, f"{tag}:a", f"{tag}:b", "1", "2") == [b"1", b"2"]
        assert client.get(f"{tag}:b") == b"2"
        # keys without a shared tag land in different slots: the server itself refuses (a real cluster)
        first, second = "infra-lua-x", "infra-lua-y"
        assert client.keyslot(first) != client.keyslot(second)
        owner = client.get_node_from_key(first)
    with redis.Redis(host=owner.host, port=owner.port) as node, pytest.raises(ClusterCrossSlotError):
        node.eval(script, 2, first, second, "1", "2")


# --- require_redis ---------------------------------------------------------------------------------


def test_require_redis_passes_when_installed() -> None:
    require_redis(env={"CI": "true"})  # binaries present on this machine: neither skip nor fail
    assert redis_servers.REDIS_SERVER is not None and redis_servers.REDIS_CLI is not None


@pytest.mark.parametrize("env", [{}, {"CI": "false"}, {"CI": ""}])
def test_require_redis_skips_outside_ci_when_missing(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setattr(redis_servers, "REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_redis(env=env)
    assert str(skipped.value) == f"redis-server not found; install it with: {INSTALL_HINT}"


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_require_redis_fails_in_ci_when_missing(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(redis_servers, "REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_redis(env={"CI": ci})
    assert str(failed.value) == f"redis-server not found; install it with: {INSTALL_HINT}"


def test_require_redis_names_a_missing_redis_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_servers, "REDIS_CLI", None)
    with pytest.raises(pytest.fail.Exception, match=r"^redis-cli not found; install it with: apt-get install"):
        require_redis(env={"CI": "true"})
