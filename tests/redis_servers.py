"""Real Redis servers for tests: a single server and a 3-master Redis Cluster, each started on free
loopback ports in its own temp dir, with AOF on (``appendfsync always``) and ``noeviction``.

Use the fixtures from any conftest (or test module)::

    from tests.redis_servers import redis_cluster, redis_server, shared_redis  # noqa: F401

* ``redis_server``  (function scope): a fresh server per test; free to ``kill()``/``restart()``/``stop()``.
* ``shared_redis``  (session scope): one server for the whole session; tests must use unique key
  prefixes and must not stop, kill or reconfigure it.
* ``redis_cluster`` (session scope): one 3-master cluster for the whole session; same rules.

Session-scoped servers are shared even if the fixtures are imported into several modules/conftests
(pytest would otherwise make one per import site). Every process started here is stopped by its
fixture's teardown, by the context manager, or at interpreter exit as a last resort.

No redis-py needed here: readiness is checked with a minimal RESP client on a raw socket.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

from tests.parts import missing, shared, signal_and_wait

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
INSTALL_HINT = "apt-get install -y redis-server"

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
CLUSTER_READY_TIMEOUT = 30.0
CLUSTER_SLOTS = 16384

# Base options of every server started here; extra_args come after them and win (last one wins).
BASE_ARGS: tuple[str, ...] = (
    "--appendonly", "yes",
    "--appendfsync", "always",
    "--save", "",
    "--maxmemory-policy", "noeviction",
    "--protected-mode", "no",
    "--daemonize", "no",
)  # fmt: skip


def require_redis(env: Mapping[str, str] | None = None) -> None:
    """Skip the test when redis-server or redis-cli is missing; fail instead when ``CI=true``.

    ``env`` defaults to ``os.environ`` (a parameter so the CI rule can be tested without touching it).
    """
    env = os.environ if env is None else env
    for name, path in (("redis-server", REDIS_SERVER), ("redis-cli", REDIS_CLI)):
        if path is None or not os.access(path, os.X_OK):
            missing(f"{name} not found; install it with: {INSTALL_HINT}", env)


def free_port() -> int:
    """A port that was free a moment ago (the caller retries if it is taken before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def redis_pids(port: int) -> list[int]:
    """PIDs of live redis-server processes listening on 127.0.0.1:``port`` (for leak checks).

    Redis rewrites its process title to ``/usr/bin/redis-server 127.0.0.1:PORT`` (``proc-title-template``),
    so ``pgrep -f "redis-server.*--port PORT"`` never matches anything: use this (or the same pattern)."""
    found = subprocess.run(
        ["pgrep", "-f", rf"(^|/)redis-server {re.escape(HOST)}:{port}( |$)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(pid) for pid in found.stdout.split()]


# --- a minimal RESP client (enough for PING / INFO / CLUSTER INFO) ---------------------------------


class RespError(Exception):
    """An error reply (``-ERR ...``) from Redis."""


def _read_line(sock_file: Any) -> bytes:
    line: bytes = sock_file.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    return line[:-2]


def _read_reply(sock_file: Any) -> Any:
    line = _read_line(sock_file)
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data: bytes = sock_file.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("connection closed mid-reply")
        return data[:-2].decode()
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read_reply(sock_file) for _ in range(size)]
    raise ConnectionError(f"unexpected reply {line[:80]!r}")


def redis_command(port: int, *args: str, host: str = HOST, timeout: float = 2.0) -> Any:
    """Send one command on a new connection and return the decoded reply (raises RespError/OSError)."""
    payload = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        payload.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(payload))
        with sock.makefile("rb") as sock_file:
            return _read_reply(sock_file)


def parse_info(text: str) -> dict[str, str]:
    """``INFO`` / ``CLUSTER INFO`` text → {field: value}."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


# --- last-resort cleanup ---------------------------------------------------------------------------

_LIVE: set[RedisServer] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


class RedisServerError(RuntimeError):
    pass


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, data (AOF) and log in ``directory``.

    ``port=None`` picks a free port (retrying if it is taken before Redis binds it). ``extra_args``
    are appended after the defaults, so e.g. ``["--maxmemory-policy", "allkeys-lru"]`` overrides.
    ``cluster=True`` adds ``--cluster-enabled yes --cluster-config-file nodes-P.conf
    --cluster-node-timeout N --cluster-port B`` (B: a second free port, so P+10000 never matters).
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        cluster: bool = False,
        cluster_node_timeout_ms: int = 2000,
    ) -> None:
        self._owned_dir: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._owned_dir = tempfile.TemporaryDirectory(prefix="redis-")
            directory = self._owned_dir.name
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self.bus_port: int | None = free_port() if cluster else None
        self.extra_args = tuple(extra_args)
        self.cluster = cluster
        self.cluster_node_timeout_ms = cluster_node_timeout_ms
        self.proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

    # -- info --

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.dir / f"redis-{self.port}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self, *args: str, timeout: float = 2.0) -> Any:
        """One raw RESP command to this server (for tests that want no client library)."""
        return redis_command(self.port, *args, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def argv(self) -> list[str]:
        if REDIS_SERVER is None:
            raise RedisServerError(f"redis-server not found; install it with: {INSTALL_HINT}")
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--dir", str(self.dir), *BASE_ARGS]
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{self.port}.conf",
                "--cluster-node-timeout", str(self.cluster_node_timeout_ms),
                "--cluster-port", str(self.bus_port),
            ]  # fmt: skip
        return [*args, *self.extra_args]

    # -- lifecycle --

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start and wait until PING answers PONG (AOF loaded) from *this* process."""
        if self.is_running:
            raise RedisServerError(f"redis on port {self.port} is already running")
        # A port picked by us may be grabbed by someone else before Redis binds it: pick again.
        # Never on a restart (same port is the point) nor when the caller chose the port.
        attempts = 1 if (self._fixed_port or self._started_once) else 5
        for attempt in range(attempts):
            try:
                self._spawn_and_wait(timeout)
            except _PortTaken:
                if attempt == attempts - 1:
                    raise RedisServerError(f"port {self.port} is in use:\n{self.log_tail()}") from None
                self.port = free_port()
                if self.cluster:
                    self.bus_port = free_port()
                continue
            self._started_once = True
            return self
        raise AssertionError("unreachable")

    def _spawn_and_wait(self, timeout: float) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _LIVE.add(self)
        try:
            self._wait_ready(self.proc, timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready():
            try:  # doubles as the poll interval: returns at once if Redis exited
                proc.wait(timeout=0.01)
            except subprocess.TimeoutExpired:
                pass
            else:
                tail = self.log_tail()
                if "Address already in use" in tail:
                    raise _PortTaken
                raise RedisServerError(f"redis-server exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RedisServerError(f"redis on port {self.port} not ready after {timeout}s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        assert self.proc is not None
        try:
            if self.command("PING", timeout=0.5) != "PONG":
                return False
            info = parse_info(self.command("INFO", "server", timeout=0.5))
        except (OSError, RespError):  # refused, reset, or -LOADING while the AOF is read
            return False
        if info.get("process_id") != str(self.proc.pid):
            raise RedisServerError(f"port {self.port} answered by another process ({info.get('process_id')})")
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful stop (SIGTERM: Redis fsyncs the AOF and exits); SIGKILL if it takes too long."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash. With ``appendfsync always`` every acknowledged write survives it."""
        self._signal_and_wait(signal.SIGKILL, STOP_TIMEOUT)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        if self.proc is None:
            return
        signal_and_wait(self.proc, sig, timeout, STOP_TIMEOUT)
        _LIVE.discard(self)

    def restart(self, timeout: float = START_TIMEOUT) -> Self:
        """Start again on the same port and dir (reloads the AOF). Stops it first if still running;
        call ``kill()`` before to simulate a crash."""
        if self.is_running:
            self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop and remove the temp dir if this object created it."""
        self.stop()
        if self._owned_dir is not None:
            self._owned_dir.cleanup()
            self._owned_dir = None

    def __enter__(self) -> Self:
        if not self.is_running:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<RedisServer {HOST}:{self.port} {state} dir={self.dir}>"


class _PortTaken(Exception):
    pass


class RedisCluster:
    """``masters`` cluster-enabled servers (no replicas) on free ports, each in ``directory/node-P``,
    joined with ``redis-cli --cluster create`` and polled until every node reports ``cluster_state:ok``,
    all 16384 slots ok and every node known.

    ``servers`` exposes the nodes (a test that kills one must own its cluster, not use the shared one,
    and call ``wait_ready()`` after ``restart()``).
    """

    def __init__(self, directory: Path | str | None = None, *, masters: int = 3, node_timeout_ms: int = 2000) -> None:
        self._owned_dir: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._owned_dir = tempfile.TemporaryDirectory(prefix="redis-cluster-")
            directory = self._owned_dir.name
        self.dir = Path(directory)
        self.masters = masters
        self.node_timeout_ms = node_timeout_ms
        self.servers: list[RedisServer] = []

    @property
    def nodes(self) -> list[tuple[str, int]]:
        return [(HOST, server.port) for server in self.servers]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in self.nodes)

    @property
    def is_running(self) -> bool:
        return bool(self.servers) and all(server.is_running for server in self.servers)

    def start(self, timeout: float = CLUSTER_READY_TIMEOUT) -> Self:
        if self.servers:
            raise RedisServerError("cluster already started")
        if REDIS_CLI is None:
            raise RedisServerError(f"redis-cli not found; install it with: {INSTALL_HINT}")
        try:
            for index in range(self.masters):
                server = RedisServer(
                    self.dir / f"node-{index}", cluster=True, cluster_node_timeout_ms=self.node_timeout_ms
                )
                self.servers.append(server)
                server.start()
            addresses = [f"{host}:{port}" for host, port in self.nodes]
            create = subprocess.run(
                [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if create.returncode != 0:
                raise RedisServerError(f"redis-cli --cluster create failed:\n{create.stdout}\n{create.stderr}")
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def node_states(self) -> dict[int, dict[str, str]]:
        """CLUSTER INFO of every reachable node, by port."""
        states: dict[int, dict[str, str]] = {}
        for server in self.servers:
            with contextlib.suppress(OSError, RespError):
                states[server.port] = parse_info(server.command("CLUSTER", "INFO", timeout=0.5))
        return states

    def is_ready(self) -> bool:
        states = self.node_states()
        if len(states) != len(self.servers):
            return False
        return all(
            state.get("cluster_state") == "ok"
            and state.get("cluster_slots_assigned") == str(CLUSTER_SLOTS)
            and state.get("cluster_slots_ok") == str(CLUSTER_SLOTS)
            and state.get("cluster_known_nodes") == str(len(self.servers))
            and state.get("cluster_size") == str(len(self.servers))
            for state in states.values()
        )

    def wait_ready(self, timeout: float = CLUSTER_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            dead = [s for s in self.servers if not s.is_running]
            if dead:
                raise RedisServerError(f"cluster node exited:\n{dead[0].log_tail()}")
            if time.monotonic() > deadline:
                raise RedisServerError(f"cluster not ready after {timeout}s: {self.node_states()}")
            # poll interval without a bare sleep: wait on a node process (returns early only if it exits)
            with contextlib.suppress(subprocess.TimeoutExpired):
                assert self.servers[0].proc is not None
                self.servers[0].proc.wait(timeout=0.02)

    def stop(self) -> None:
        errors: list[BaseException] = []
        for server in self.servers:
            try:
                server.stop()
            except BaseException as exc:  # stop the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]

    def kill(self) -> None:
        for server in self.servers:
            server.kill()

    def close(self) -> None:
        self.stop()
        if self._owned_dir is not None:
            self._owned_dir.cleanup()
            self._owned_dir = None

    def __enter__(self) -> Self:
        if not self.servers:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisCluster {self.url} {'running' if self.is_running else 'stopped'}>"


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh single Redis for this test (AOF, appendfsync always, noeviction) in tmp_path/redis."""
    require_redis()
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One single Redis for the whole session: use unique key prefixes; never stop/kill/reconfigure it."""
    require_redis()
    with shared(
        "redis", lambda: RedisServer(tmp_path_factory.mktemp("shared-redis")).start(), RedisServer.stop
    ) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One 3-master Redis Cluster for the whole session: use unique key prefixes (in hash tags)."""
    require_redis()
    with shared(
        "cluster", lambda: RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start(), RedisCluster.stop
    ) as cluster:
        yield cluster
