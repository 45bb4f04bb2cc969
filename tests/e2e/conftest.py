"""The real server as a subprocess: `python -m app serve` on a free loopback port, configured only by
AUTHMD_* environment variables, with its own data directory and a log file shown when a test fails."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest

from tests.parts import signal_and_wait

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


class ServerProcess:
    """One `authmd serve` process; restartable on the same port and data directory.

    ``env`` values may contain ``{port}`` and ``{origin}``, filled in once the port is chosen (for
    example ``AUTHMD_ISSUER="{origin}/tenant"``).
    """

    def __init__(self, workdir: Path, env: Mapping[str, str], verify: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        # With AUTHMD_TLS_* the server speaks https; ``verify`` trusts the test CA.
        self.verify: ssl.SSLContext | bool = verify or True
        scheme = "https" if "AUTHMD_TLS_CERT_FILE" in env else "http"
        self.origin = f"{scheme}://{HOST}:{self.port}"
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "server.log"
        self.overrides = {k: v.format(port=self.port, origin=self.origin) for k, v in env.items()}
        self.issuer = self.overrides.get("AUTHMD_ISSUER", self.origin)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    @property
    def db_path(self) -> Path:
        return self.data_dir / "authmd.sqlite3"

    def environment(self) -> dict[str, str]:
        # Nothing AUTHMD_* leaks in from the environment running the tests.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
        env["PYTHONUNBUFFERED"] = "1"
        env["AUTHMD_DATA_DIR"] = str(self.data_dir)
        env.update(self.overrides)
        return env

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no server log)"

    def start(self) -> None:
        assert self.proc is None, "server already running"
        self.starts += 1
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        shown = {k: "**********" if "SECRET" in k or "PASSWORD" in k else v for k, v in self.overrides.items()}
        self._log.write(f"----- start #{self.starts}: {shown} -----\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", HOST, "--port", str(self.port)],
            cwd=ROOT,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=2.0, verify=self.verify) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    self.stop()
                    pytest.fail(f"the server exited with status {code} during start-up:\n{self.read_log()}")
                try:
                    if client.get(f"{self.origin}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() >= deadline:
                    self.stop()
                    pytest.fail(f"GET /healthz was not 200 within {START_TIMEOUT:g} s:\n{self.read_log()}")
                time.sleep(POLL_INTERVAL)

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit status (None if it was not running)."""
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            signal_and_wait(proc, signal.SIGTERM, STOP_TIMEOUT, STOP_TIMEOUT)
            code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def kill(self) -> None:
        """SIGKILL (kill -9): no shutdown of any kind; ``start`` brings it back on the same port and data."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> int | None:
        """Stop, then start again on the same port with the same data directory and environment."""
        code = self.stop()
        self.start()
        return code


SERVERS = pytest.StashKey[list[ServerProcess]]()
StartServer = Callable[..., ServerProcess]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        for server in item.stash.get(SERVERS, []):
            report.sections.append((f"server log ({server.origin})", server.read_log()))
    return report


@pytest.fixture
def start_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartServer]:
    """``start_server({"AUTHMD_POW_MODE": "always", ...})`` → a running ServerProcess."""
    servers: list[ServerProcess] = []
    request.node.stash[SERVERS] = servers

    def start(env: Mapping[str, str] | None = None, *, verify: ssl.SSLContext | None = None) -> ServerProcess:
        workdir = tmp_path / f"server{len(servers)}"
        workdir.mkdir()
        server = ServerProcess(workdir, env or {}, verify)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client
